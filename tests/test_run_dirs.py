"""Run and evaluation folders are claimed atomically: runs started at once never share a folder."""
import multiprocessing
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from detectron2.config import get_cfg

from helpers import load_script
from mqformer_d2.engine.defaults import separate_eval_output_dir
from mqformer_d2.engine.run_dirs import claim_dir, claim_timestamped_dir

FROZEN = time.strftime("%Y%m%d_%H%M%S")


@pytest.fixture
def same_second(monkeypatch):
    """Every process or thread of the test starts in the same second."""
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: fmt.replace("%Y%m%d_%H%M%S", FROZEN))


def test_threads_started_in_the_same_second_get_distinct_run_folders(tmp_path, same_second):
    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(lambda _: claim_timestamped_dir(str(tmp_path), "run_"), range(8)))
    assert len(set(paths)) == 8 and all(os.path.isdir(p) for p in paths)
    assert os.path.join(str(tmp_path), f"run_{FROZEN}") in paths


def test_main_job_runs_started_in_the_same_second_get_distinct_folders(tmp_path, monkeypatch, same_second):
    train_shapes = load_script("tools/train_shapes.py")
    monkeypatch.setattr(train_shapes, "ROOT", str(tmp_path))
    first, second = train_shapes.fresh_output_dir(None), train_shapes.fresh_output_dir(None)
    assert first != second and os.path.dirname(first) == os.path.dirname(second)


def test_eval_only_runs_started_in_the_same_second_get_distinct_folders(tmp_path, same_second):
    (tmp_path / "model_final.pth").write_bytes(b"weights")
    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(tmp_path)
    first, second = separate_eval_output_dir(cfg).OUTPUT_DIR, separate_eval_output_dir(cfg).OUTPUT_DIR
    assert first != second and {os.path.basename(first)[:5], os.path.basename(second)[:5]} == {"eval_"}


def _claim(path, queue):
    try:
        claim_dir(path)
        queue.put("claimed")
    except FileExistsError:
        queue.put("refused")


@pytest.mark.parametrize("exists", [False, True])
def test_two_processes_claiming_one_named_folder_one_is_refused(tmp_path, exists):
    path = str(tmp_path / "run")
    if exists:
        os.mkdir(path)  # an existing empty folder is claimed through its marker file
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    processes = [context.Process(target=_claim, args=(path, queue)) for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
    assert sorted(queue.get(timeout=5) for _ in processes) == ["claimed", "refused"]


def test_a_named_folder_with_files_is_refused_and_kept(tmp_path):
    (tmp_path / "model_final.pth").write_bytes(b"weights")
    with pytest.raises(FileExistsError, match=str(tmp_path)):
        claim_dir(str(tmp_path))
    assert (tmp_path / "model_final.pth").read_bytes() == b"weights"
