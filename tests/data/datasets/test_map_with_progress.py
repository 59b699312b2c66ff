"""map_with_progress: the loaders' parallel map keeps the input order, on any number of threads."""
import threading

import pytest

from mqformer_d2.data.datasets.common import map_with_progress


@pytest.mark.parametrize("workers", [1, 3])
def test_results_keep_the_input_order(workers):
    threads = set()

    def square(x):
        threads.add(threading.get_ident())
        return x * x

    assert map_with_progress(square, list(range(150)), desc="squares", workers=workers) == [x * x for x in range(150)]
    assert 1 <= len(threads) <= workers


def test_the_default_worker_count_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MQFORMER_DATA_WORKERS", "1")
    threads = set()
    map_with_progress(lambda x: threads.add(threading.get_ident()), list(range(20)), desc="count")
    assert len(threads) == 1
    assert map_with_progress(str, [], desc="nothing") == []
