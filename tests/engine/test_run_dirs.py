"""Run and evaluation folders are claimed atomically: runs started at once never share a folder."""
import multiprocessing
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from detectron2.config import get_cfg

from mqformer_d2.engine.defaults import separate_eval_output_dir
from mqformer_d2.engine.run_dirs import TRAINING_LOCK, TrainingDirLock, claim_dir, claim_timestamped_dir
from mqformer_d2.experiments import main_job

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


def test_main_job_runs_started_in_the_same_second_get_distinct_folders(tmp_path, same_second):
    first, second = main_job.fresh_output_dir(None, str(tmp_path)), main_job.fresh_output_dir(None, str(tmp_path))
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


def _lock_and_hold(path, queue, seconds):
    try:
        with TrainingDirLock(path):
            queue.put("locked")
            time.sleep(seconds)
    except FileExistsError as e:
        queue.put(str(e))


def test_two_processes_locking_one_training_folder_one_is_refused_naming_the_holder(tmp_path):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    processes = [context.Process(target=_lock_and_hold, args=(str(tmp_path), queue, 3)) for _ in range(2)]
    for process in processes:
        process.start()
    answers = [queue.get(timeout=30) for _ in processes]
    for process in processes:
        process.join(30)
    assert answers.count("locked") == 1
    refusal = next(a for a in answers if a != "locked")
    assert f"OUTPUT_DIR {tmp_path} is in use by another training run" in refusal
    # The holder writes its pid right after locking; a refusal in between names "another process".
    assert any(f"(pid {p.pid} on" in refusal for p in processes) or "(another process;" in refusal
    assert not (tmp_path / TRAINING_LOCK).exists()  # removed by the holder at its end


def test_the_lock_of_a_killed_training_does_not_block_the_next(tmp_path):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    holder = context.Process(target=_lock_and_hold, args=(str(tmp_path), queue, 60))
    holder.start()
    assert queue.get(timeout=30) == "locked"
    os.kill(holder.pid, signal.SIGKILL)  # no clean-up runs: the lock file stays
    holder.join(30)
    assert (tmp_path / TRAINING_LOCK).exists()
    with TrainingDirLock(str(tmp_path)) as lock:
        assert f"pid {os.getpid()} on" in open(lock.path).read()
