"""What a first command meets: a CUDA config on a machine without CUDA fails once, before any
process is spawned; CPU processes share the cores; a missing weights file fails before the model is
built (also for tools/convert_weights.py's SRC); an empty DATASETS.TRAIN is reported as such."""
import os

import pytest
import torch

from helpers import ROOT, TINY_CONFIG, load_script, tiny_config, train_net_args
from mqformer_d2.engine import MQFormerPredictor, launcher
from mqformer_d2.engine import predictor as predictor_module
from mqformer_d2.engine.defaults import build_config, check_training_config

R50 = os.path.join(ROOT, "configs", "mqformer_R50.yaml")


def _refuse(*args, **kwargs):
    raise AssertionError("called although the check should have failed first")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_cuda_config_without_cuda_fails_before_spawning(monkeypatch):
    monkeypatch.setattr(launcher, "launch", _refuse)
    with pytest.raises(RuntimeError, match="CUDA is not available.*--cpu"):
        launcher.launch_main(train_net_args("--config-file", R50, "--num-gpus", 2))


def test_cpu_processes_share_the_cores(monkeypatch):
    threads = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(launcher.comm, "get_local_size", lambda: 2)
    monkeypatch.setattr(launcher.os, "cpu_count", lambda: 8)
    try:
        assert launcher.share_cpu_threads(tiny_config()) == 4
        monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's choice is kept
        torch.set_num_threads(3)
        assert launcher.share_cpu_threads(tiny_config()) == 3
    finally:
        torch.set_num_threads(threads)


def test_one_process_keeps_its_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert launcher.share_cpu_threads(tiny_config()) == torch.get_num_threads()


@pytest.mark.parametrize("weights, error, message", [
    ("weights/no_such_model.pth", FileNotFoundError, r"weights/no_such_model.pth does not exist \(MODEL.WEIGHTS\)"),
    ("https://example.com/model.pth", ValueError, "is a URL: .*Download the file first"),
])
def test_the_predictor_checks_the_weights_before_building(monkeypatch, weights, error, message):
    monkeypatch.setattr(predictor_module, "build_model", _refuse)
    with pytest.raises(error, match=message):
        MQFormerPredictor(build_config(R50, ["MODEL.WEIGHTS", weights], cpu=True))


def test_convert_weights_names_a_missing_source(tmp_path, monkeypatch):
    tool = load_script("tools/convert_weights.py")
    monkeypatch.setattr(tool, "build_model", _refuse)
    with pytest.raises(FileNotFoundError, match=r"missing.pth does not exist \(SRC\)"):
        tool.main(["--config-file", TINY_CONFIG, str(tmp_path / "missing.pth"), str(tmp_path / "out.pth")])


def test_an_empty_train_set_is_reported_before_other_settings():
    cfg = build_config(R50, ["DATASETS.TRAIN", "()"], cpu=True)  # also mixed precision on CPU
    with pytest.raises(ValueError, match="DATASETS.TRAIN is empty"):
        check_training_config(cfg)


def test_the_tiny_config_trains_its_text_tower():
    assert tiny_config().MODEL.MQFORMER.TEXT_ENCODER.FREEZE is False


@pytest.mark.parametrize("path", ["configs/coco/panoptic_R50.yaml", "configs/coco/panoptic_swin_large.yaml",
                                  "configs/paper/mix_swin_large.yaml"])
def test_the_ready_to_run_configs_name_registered_datasets(path):
    from mqformer_d2.engine.dataset_checks import check_dataset_names

    cfg = build_config(os.path.join(ROOT, path), cpu=True)
    assert len(cfg.DATASETS.TRAIN) and len(cfg.DATASETS.TEST)
    check_dataset_names(cfg)  # every name registered
    assert len(cfg.DATASETS.TRAIN_SAMPLING_RATIOS) in (0, len(cfg.DATASETS.TRAIN))
    assert cfg.MODEL.WEIGHTS.startswith("weights/") and cfg.MODEL.MQFORMER.TEXT_ENCODER.PRETRAINED.startswith("weights/")
