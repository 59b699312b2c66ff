"""tools/synthetic_data_experiment.py end to end on a tiny benchmark: split, hidden views, synthetic
masks and captions, four (2-iteration) training runs and the results table, all in this process."""
import json
import os
import sys

import pytest
import torch
from detectron2.data import DatasetCatalog
from helpers import ROOT, TINY_OPTIONS, load_script

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def experiment():
    return load_script("tools/synthetic_data_experiment.py")


def test_mixtures_keep_the_main_jobs_ratios(experiment):
    without = dict(experiment.training_mixture("a_without_hidden", 0.25))
    assert without[experiment.KEPT] == 4.0 and experiment.HIDDEN not in without
    real = dict(experiment.training_mixture("c_real_masks", 0.25))
    assert real[experiment.KEPT] == pytest.approx(3.0) and real[experiment.HIDDEN] == pytest.approx(1.0)
    assert real[experiment.KEPT_REFERRING] == 2.0 and real["mqformer_shapes_train_detection"] == 1.0
    synthetic = dict(experiment.training_mixture("b_synthetic_masks", 0.25))
    assert synthetic[experiment.SYNTHETIC_MASKS] == pytest.approx(1.0)


def test_bad_hidden_fraction_is_refused(experiment):
    with pytest.raises(SystemExit):
        experiment.parse_args(["--hidden-fraction", "1.0"])


def test_existing_output_is_never_reused(experiment, tmp_path):
    (tmp_path / "keep.txt").write_text("a user's file")
    with pytest.raises(FileExistsError, match="already holds files"):
        experiment.main(["--output-dir", str(tmp_path)])
    assert (tmp_path / "keep.txt").read_text() == "a user's file"


def test_the_whole_experiment_on_a_tiny_benchmark(experiment, tiny_shapes, tmp_path, monkeypatch):
    def run_in_this_process(experiment_dir, stage, args):
        command = experiment.stage_command(experiment_dir, stage, args)
        experiment.execute_stage(experiment.parse_args(command[2:]))

    monkeypatch.setattr(experiment, "run_stage", run_in_this_process)
    monkeypatch.setattr(sys, "path", list(sys.path))
    output = tmp_path / "experiment"
    options = [*map(str, TINY_OPTIONS), "SOLVER.MAX_ITER", "2", "SOLVER.STEPS", "(1,)", "SOLVER.WARMUP_ITERS", "0",
               "SOLVER.CHECKPOINT_PERIOD", "100", "TEST.EVAL_PERIOD", "0"]
    assert experiment.main(["--config-file", os.path.join(ROOT, "configs", "mqformer_tiny_cpu.yaml"),
                            "--output-dir", str(output), *options]) == 0

    split = json.loads((output / "split.json").read_text())
    all_ids = sorted(r["image_id"] for r in DatasetCatalog.get(experiment.PANOPTIC))
    assert len(split["hidden_image_ids"]) == 1 and set(split["hidden_image_ids"]) < set(all_ids)
    kept_ids = {r["image_id"] for r in DatasetCatalog.get(experiment.KEPT)}
    assert kept_ids.isdisjoint(split["hidden_image_ids"]) and kept_ids | set(split["hidden_image_ids"]) == set(all_ids)
    assert all("segmentation" not in a for r in DatasetCatalog.get(experiment.HIDDEN_BOXES) for a in r["annotations"])
    # The synthetic files cover every hidden object: masks with a quality, captions as texts.
    hidden_objects = sum(len(r["annotations"]) for r in DatasetCatalog.get(experiment.HIDDEN))
    masks = json.loads((output / "synthetic_masks.json").read_text())["annotations"]
    captions = json.loads((output / "synthetic_captions.json").read_text())["annotations"]
    assert len(masks) == len(captions) == hidden_objects > 0
    assert all("quality" in a for a in masks) and all(a["texts"] for a in captions)
    for variant in experiment.VARIANTS:
        config = (output / variant / "config.yaml").read_text()
        assert experiment.KEPT in config and (output / variant / "model_final.pth").exists()
    assert experiment.SYNTHETIC_MASKS in (output / "b_synthetic_masks" / "config.yaml").read_text()
    table = (output / "synthetic_data.md").read_text()
    assert all(f"| {variant} |" in table for variant in experiment.VARIANTS)
    assert "Synthetic masks against the hidden ground truth: mIoU" in table
    assert (output / "synthetic_data_curves.png").stat().st_size > 0
