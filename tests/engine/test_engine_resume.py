"""Resume picks the newest intact checkpoint; the run's config.yaml survives a resume."""
import logging
import os
import time

import pytest
import torch

from mqformer_d2.engine.resume import is_intact_checkpoint, keep_run_config, resume_checkpoint


def _save(folder, name, iteration):
    torch.save({"model": {"w": torch.zeros(64)}, "iteration": iteration}, os.path.join(folder, name))
    stamp = time.time() - 100 + iteration  # later iterations are newer
    os.utime(os.path.join(folder, name), (stamp, stamp))


@pytest.fixture
def run(tmp_path):
    for iteration, name in [(1, "model_0000001.pth"), (3, "model_0000003.pth"), (4, "model_final.pth")]:
        _save(str(tmp_path), name, iteration)
    (tmp_path / "last_checkpoint").write_text("model_final.pth")
    return tmp_path


def test_an_intact_last_checkpoint_is_used(run):
    assert resume_checkpoint(str(run)) == str(run / "model_final.pth")


def test_a_truncated_last_checkpoint_falls_back_to_the_newest_intact_one(run, caplog, monkeypatch):
    # detectron2's setup_logger (run by other tests) stops "mqformer_d2" records reaching caplog.
    monkeypatch.setattr(logging.getLogger("mqformer_d2"), "propagate", True)
    final = run / "model_final.pth"
    final.write_bytes(final.read_bytes()[:200])
    assert not is_intact_checkpoint(str(final))
    assert resume_checkpoint(str(run)) == str(run / "model_0000003.pth")
    assert any(str(final) in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_a_deleted_last_checkpoint_falls_back_too(run):
    (run / "model_final.pth").unlink()
    (run / "model_0000003.pth").write_bytes(b"")  # zero bytes: a save killed at once
    assert resume_checkpoint(str(run)) == str(run / "model_0000001.pth")


def test_no_intact_checkpoint_is_an_error_naming_last_checkpoint(run):
    for name in ("model_final.pth", "model_0000003.pth", "model_0000001.pth"):
        (run / name).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(FileNotFoundError, match="last_checkpoint"):
        resume_checkpoint(str(run))


def test_no_last_checkpoint_means_nothing_to_resume(tmp_path):
    assert resume_checkpoint(str(tmp_path)) is None


def test_the_run_config_is_kept_and_the_resumed_one_written_beside_it(tmp_path):
    (tmp_path / "config.yaml").write_text("MAX_ITER: 3\n")

    def write_config():
        (tmp_path / "config.yaml").write_text("MAX_ITER: 5\n")

    assert keep_run_config(str(tmp_path), write_config) == str(tmp_path / "config.resume-1.yaml")
    assert keep_run_config(str(tmp_path), write_config) == str(tmp_path / "config.resume-2.yaml")
    assert (tmp_path / "config.yaml").read_text() == "MAX_ITER: 3\n"
    assert (tmp_path / "config.resume-2.yaml").read_text() == "MAX_ITER: 5\n"


def test_the_run_config_is_kept_when_the_resume_fails(tmp_path):
    (tmp_path / "config.yaml").write_text("MAX_ITER: 3\n")

    def write_then_fail():
        (tmp_path / "config.yaml").write_text("MAX_ITER: 5\n")
        raise RuntimeError("setup failed")

    with pytest.raises(RuntimeError):
        keep_run_config(str(tmp_path), write_then_fail)
    assert (tmp_path / "config.yaml").read_text() == "MAX_ITER: 3\n"
    assert not (tmp_path / "config.yaml.original").exists()


def test_checkpoints_without_last_checkpoint_resume_from_the_newest_intact_one(run, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("mqformer_d2"), "propagate", True)
    (run / "last_checkpoint").unlink()
    assert resume_checkpoint(str(run)) == str(run / "model_final.pth")
    assert any("last_checkpoint is missing" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_checkpoints_without_last_checkpoint_none_intact_is_an_error(run):
    (run / "last_checkpoint").unlink()
    for name in ("model_final.pth", "model_0000003.pth", "model_0000001.pth"):
        (run / name).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(FileNotFoundError, match="none of its checkpoints"):
        resume_checkpoint(str(run))


def test_other_weights_files_in_the_folder_are_not_checkpoints_of_the_run(tmp_path):
    torch.save({"model": {"w": torch.zeros(2)}}, str(tmp_path / "R-50.pth"))
    assert resume_checkpoint(str(tmp_path)) is None
