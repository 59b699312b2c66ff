"""train_net.py in-process on a tiny synthetic benchmark: train + evaluate, resume, eval-only."""
import os
import shutil

import pytest
import torch
from detectron2.engine import HookBase
from helpers import (
    TINY_CONFIG,
    TINY_OPTIONS,
    checkpoint_iteration,
    digest_evaluator,
    load_train_net,
    train_net_args,
)

from mqformer_d2.engine import MQFormerTrainer
from mqformer_d2.engine.run_dirs import TRAINING_LOCK, TrainingDirLock

torch.set_num_threads(2)
REAL_BUILD_EVALUATOR = MQFormerTrainer.__dict__["build_evaluator"]

TRAIN_OPTIONS = [
    *TINY_OPTIONS,
    "DATASETS.TRAIN", "('mqformer_shapes_train', 'mqformer_shapes_train_referring')",
    "DATASETS.TRAIN_SAMPLING_RATIOS", "[2.0, 1.0]",
    "DATASETS.TEST", "('mqformer_shapes_val_instance', 'mqformer_shapes_val_referring')",
    "SOLVER.MAX_ITER", 3, "SOLVER.CHECKPOINT_PERIOD", 2, "TEST.EVAL_PERIOD", 0,
    "SOLVER.CLIP_GRADIENTS.ENABLED", True, "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "full_model",
    "SOLVER.CLIP_GRADIENTS.CLIP_VALUE", 0.01,
]


@pytest.fixture(scope="module")
def train_net():
    return load_train_net()


@pytest.fixture(scope="module")
def digest_evaluators():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MQFormerTrainer, "build_evaluator", digest_evaluator)
        yield


@pytest.fixture(scope="module")
def trained(train_net, tiny_shapes, digest_evaluators, tmp_path_factory):
    """One 3-iteration run: (its OUTPUT_DIR, the results of its final evaluation)."""
    output_dir = str(tmp_path_factory.mktemp("run"))
    results = train_net.main(train_net_args("--config-file", TINY_CONFIG, *TRAIN_OPTIONS, "OUTPUT_DIR", output_dir))
    return output_dir, results


def flat(results):
    """{dataset: {task: {metric: value}}} -> {"dataset/task/metric": value}."""
    return {f"{d}/{t}/{m}": v for d, tasks in results.items() for t, metrics in tasks.items()
            for m, v in metrics.items()}


def test_training_checkpoints_and_evaluates(trained):
    output_dir, results = trained
    files = set(os.listdir(output_dir))
    assert {"model_0000001.pth", "model_final.pth", "last_checkpoint", "config.yaml", "metrics.json"} <= files
    assert checkpoint_iteration(os.path.join(output_dir, "model_final.pth")) == 2
    assert set(results) == {"mqformer_shapes_val_instance", "mqformer_shapes_val_referring"}
    instance, referring = (results[name]["digest"] for name in sorted(results))
    assert instance["images"] == 2 and instance["instance_scores"] > 0
    assert referring["images"] == 2 and referring["referring_pixels"] >= 0


def test_eval_only_reproduces_the_final_evaluation(train_net, trained, digest_evaluators):
    output_dir, results = trained
    weights = os.path.join(output_dir, "model_final.pth")
    with open(os.path.join(output_dir, "config.yaml")) as f:
        training_config = f.read()
    before = set(os.listdir(output_dir))
    again = train_net.main(train_net_args("--config-file", TINY_CONFIG, "--eval-only", *TRAIN_OPTIONS,
                                          "OUTPUT_DIR", output_dir, "MODEL.WEIGHTS", weights))
    # Equal up to float32 rounding: the text tower's cached embeddings were computed in training
    # batches, which differ from the evaluation batches (batched matmuls round differently).
    assert flat(again) == pytest.approx(flat(results), rel=1e-5, abs=1e-6)
    assert flat(again).keys() == flat(results).keys()
    # The training run's files are kept: the evaluation went to a new eval_<time> sub-folder.
    with open(os.path.join(output_dir, "config.yaml")) as f:
        assert f.read() == training_config
    added = set(os.listdir(output_dir)) - before
    assert len(added) == 1 and added.pop().startswith("eval_")


def test_resume_continues_from_the_last_checkpoint(train_net, trained, digest_evaluators, tmp_path):
    output_dir = str(tmp_path / "resumed")
    shutil.copytree(trained[0], output_dir)
    log_size = os.path.getsize(os.path.join(output_dir, "log.txt"))
    train_net.main(train_net_args("--config-file", TINY_CONFIG, "--resume", *TRAIN_OPTIONS,
                                  "OUTPUT_DIR", output_dir, "SOLVER.MAX_ITER", 5))
    assert checkpoint_iteration(os.path.join(output_dir, "model_final.pth")) == 4
    assert os.path.isfile(os.path.join(output_dir, "model_0000003.pth"))
    with open(os.path.join(output_dir, "log.txt")) as f:
        new_log = f.read()[log_size:]
    assert "Starting training from iteration 3" in new_log


def test_resume_skips_a_truncated_last_checkpoint_and_keeps_the_config(train_net, trained, digest_evaluators,
                                                                       tmp_path):
    output_dir = str(tmp_path / "resumed")
    shutil.copytree(trained[0], output_dir)
    final = os.path.join(output_dir, "model_final.pth")  # named by last_checkpoint
    with open(final, "r+b") as f:
        f.truncate(os.path.getsize(final) // 2)
    with open(os.path.join(output_dir, "config.yaml")) as f:
        training_config = f.read()
    log_size = os.path.getsize(os.path.join(output_dir, "log.txt"))
    train_net.main(train_net_args("--config-file", TINY_CONFIG, "--resume", *TRAIN_OPTIONS,
                                  "OUTPUT_DIR", output_dir, "SOLVER.MAX_ITER", 4))
    with open(os.path.join(output_dir, "log.txt")) as f:
        warnings = [line for line in f.read()[log_size:].splitlines() if "WARNING" in line]
    assert any(f"{final} (named in" in line and "truncated" in line for line in warnings), warnings
    # Resumed from model_0000001.pth (iteration 1), then trained iterations 2 and 3.
    assert checkpoint_iteration(final) == 3
    with open(os.path.join(output_dir, "config.yaml")) as f:
        assert f.read() == training_config
    with open(os.path.join(output_dir, "config.resume-1.yaml")) as f:
        assert "MAX_ITER: 4" in f.read()


def test_new_run_refuses_an_output_dir_with_checkpoints(train_net, trained):
    output_dir = trained[0]
    before = os.path.getmtime(os.path.join(output_dir, "model_final.pth"))
    with pytest.raises(FileExistsError, match="--resume"):
        train_net.main(train_net_args("--config-file", TINY_CONFIG, *TRAIN_OPTIONS, "OUTPUT_DIR", output_dir))
    assert os.path.getmtime(os.path.join(output_dir, "model_final.pth")) == before


def test_real_evaluators_on_every_task(train_net, trained, tmp_path, monkeypatch):
    monkeypatch.setattr(MQFormerTrainer, "build_evaluator", REAL_BUILD_EVALUATOR)
    tests = ("mqformer_shapes_val_instance", "mqformer_shapes_val_semantic", "mqformer_shapes_val_panoptic",
             "mqformer_shapes_val_referring", "mqformer_shapes_val_foreground",
             "mqformer_shapes_seginw_Colors_val", "mqformer_shapes_seginw_Shapes_val")
    results = train_net.main(train_net_args(
        "--config-file", TINY_CONFIG, "--eval-only", *TRAIN_OPTIONS, "DATASETS.TEST", repr(tests),
        "OUTPUT_DIR", str(tmp_path), "MODEL.WEIGHTS", os.path.join(trained[0], "model_final.pth")))
    assert set(results) == {*tests, "mqformer_shapes_seginw"}
    assert all(results[name] for name in tests)
    assert results["mqformer_shapes_seginw"]["num_datasets"] == 2


def test_eval_only_resume_evaluates_the_last_checkpoint_of_the_named_folder(train_net, trained, digest_evaluators):
    output_dir, results = trained
    again = train_net.main(train_net_args("--config-file", TINY_CONFIG, "--eval-only", "--resume", *TRAIN_OPTIONS,
                                          "OUTPUT_DIR", output_dir))
    assert flat(again) == pytest.approx(flat(results), rel=1e-5, abs=1e-6)
    newest = max((d for d in os.listdir(output_dir) if d.startswith("eval_")),
                 key=lambda d: os.path.getmtime(os.path.join(output_dir, d)))
    with open(os.path.join(output_dir, newest, "config.yaml")) as f:
        assert os.path.join(output_dir, "model_final.pth") in f.read()  # what was evaluated


@pytest.mark.parametrize("resume", [False, True])
def test_eval_only_without_any_weights_is_an_error(train_net, tiny_shapes, digest_evaluators, tmp_path, resume):
    flags = ["--eval-only"] + (["--resume"] if resume else [])
    with pytest.raises(ValueError, match="no weights to evaluate: MODEL.WEIGHTS is empty"):
        train_net.main(train_net_args("--config-file", TINY_CONFIG, *flags, *TRAIN_OPTIONS, "OUTPUT_DIR", tmp_path))
    assert not os.listdir(tmp_path)


def _copy_without_last_checkpoint(trained, tmp_path):
    output_dir = str(tmp_path / "run")
    shutil.copytree(trained[0], output_dir)
    os.remove(os.path.join(output_dir, "last_checkpoint"))
    return output_dir


def test_resume_without_last_checkpoint_continues_from_the_newest_checkpoint(train_net, trained, digest_evaluators,
                                                                             tmp_path):
    output_dir = _copy_without_last_checkpoint(trained, tmp_path)
    log_size = os.path.getsize(os.path.join(output_dir, "log.txt"))
    train_net.main(train_net_args("--config-file", TINY_CONFIG, "--resume", *TRAIN_OPTIONS,
                                  "OUTPUT_DIR", output_dir, "SOLVER.MAX_ITER", 4))
    with open(os.path.join(output_dir, "log.txt")) as f:
        new_log = f.read()[log_size:]
    assert "Starting training from iteration 3" in new_log and "last_checkpoint is missing" in new_log
    assert checkpoint_iteration(os.path.join(output_dir, "model_final.pth")) == 3


def test_new_run_refuses_checkpoints_without_last_checkpoint(train_net, trained, tmp_path):
    output_dir = _copy_without_last_checkpoint(trained, tmp_path)
    before = {n: os.path.getmtime(os.path.join(output_dir, n)) for n in os.listdir(output_dir)}
    with pytest.raises(FileExistsError, match="model_final.pth.*--resume"):
        train_net.main(train_net_args("--config-file", TINY_CONFIG, *TRAIN_OPTIONS, "OUTPUT_DIR", output_dir))
    assert {n: os.path.getmtime(os.path.join(output_dir, n)) for n in os.listdir(output_dir)} == before


@pytest.mark.parametrize("resume", [False, True])
def test_a_training_into_a_folder_another_training_holds_is_refused(train_net, tiny_shapes, tmp_path, resume):
    output_dir = tmp_path / "shared"
    with TrainingDirLock(str(output_dir)):  # as the other training holds it while it runs
        flags = ["--resume"] if resume else []
        with pytest.raises(FileExistsError, match=f"OUTPUT_DIR {output_dir} is in use by another training run "
                                                  f"\\(pid {os.getpid()} on"):
            train_net.main(train_net_args("--config-file", TINY_CONFIG, *flags, *TRAIN_OPTIONS,
                                          "OUTPUT_DIR", output_dir))
        assert os.listdir(output_dir) == [TRAINING_LOCK]  # no log.txt, config.yaml or metrics


def test_training_releases_the_folder_when_it_ends(trained):
    assert TRAINING_LOCK not in os.listdir(trained[0])
    with TrainingDirLock(trained[0]):  # nobody holds it any more
        pass


@pytest.mark.parametrize("options, message", [
    (["SOLVER.MAX_ITER", 0], "SOLVER.MAX_ITER is 0: training needs at least one iteration"),
    (["DATASETS.TRAIN", "()"], "DATASETS.TRAIN is empty"),
])
def test_settings_that_cannot_train_name_the_key(train_net, tiny_shapes, tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        train_net.main(train_net_args("--config-file", TINY_CONFIG, *TRAIN_OPTIONS, *options, "OUTPUT_DIR", tmp_path))
    assert not os.listdir(tmp_path)


class _ReplaceOutputDirWithAFile(HookBase):
    """After the first step, OUTPUT_DIR becomes a file: the checkpoint of iteration 1 cannot be written."""

    def after_step(self):
        if self.trainer.iter == 0:
            shutil.rmtree(self.trainer.cfg.OUTPUT_DIR)
            with open(self.trainer.cfg.OUTPUT_DIR, "w") as f:
                f.write("not a folder")


def test_a_failed_checkpoint_write_is_the_error_raised(train_net, tiny_shapes, digest_evaluators, tmp_path,
                                                       monkeypatch):
    build_hooks = MQFormerTrainer.build_hooks
    monkeypatch.setattr(MQFormerTrainer, "build_hooks", lambda self: [_ReplaceOutputDirWithAFile(), *build_hooks(self)])
    output_dir = tmp_path / "run"
    with pytest.raises(OSError) as raised:
        train_net.main(train_net_args("--config-file", TINY_CONFIG, *TRAIN_OPTIONS, "OUTPUT_DIR", output_dir))
    assert str(output_dir / "model_0000001.pth") in str(raised.value)
