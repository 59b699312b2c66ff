"""tools/synthetic_data_experiment.py end to end on a tiny benchmark: split, hidden views, synthetic
masks and captions, four (2-iteration) training runs and the results table, all in this process."""
import json
import os

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


def fake_seed_experiment(experiment, seed_dir, instance_ap, miou):
    """A finished single-seed experiment folder: synthetic_data.json and each variant's metrics."""
    results = {v: {"mqformer_shapes_val_instance": {"segm": {"AP": instance_ap + i}}}
               for i, v in enumerate(experiment.VARIANTS)}
    os.makedirs(seed_dir)
    with open(os.path.join(seed_dir, "synthetic_data.json"), "w") as f:
        scores = {"miou": miou, "miou_all": miou / 2, "kept": 3, "total": 4}
        json.dump({"results": results, "synthetic_masks": scores}, f)
    for variant in experiment.VARIANTS:
        os.makedirs(os.path.join(seed_dir, variant))
        with open(os.path.join(seed_dir, variant, "metrics.json"), "w") as f:
            f.write(json.dumps({"iteration": 19, "total_loss": 3.0}) + "\n")


def test_seeds_combine_into_means_and_per_seed_values(experiment, tmp_path):
    fake_seed_experiment(experiment, str(tmp_path / "seed_42"), 10.0, 0.8)
    fake_seed_experiment(experiment, str(tmp_path / "seed_43"), 12.0, 0.9)
    args = ["--combine-only", "--seeds", "42,43", "--output-dir", str(tmp_path)]
    assert experiment.main(args) == 0
    table = (tmp_path / "synthetic_data.md").read_text().splitlines()
    assert table[0].startswith("| training data | instance mask AP | semantic mIoU |")
    assert table[2].startswith("| a_without_hidden | 11.0 (10.0 / 12.0) | - |")
    assert table[5].startswith("| d_real_masks_synthetic_captions | 14.0 (13.0 / 15.0) |")
    assert "Synthetic masks (seed 43's teacher) against the hidden ground truth: mIoU 90.0" in table[-1]
    combined = json.loads((tmp_path / "synthetic_data.json").read_text())
    assert combined["spread over seeds"]["c_real_masks"]["instance mask AP"]["range"] == pytest.approx(2.0)
    # A second combination never overwrites the first, and a missing seed is named.
    with pytest.raises(FileExistsError, match="synthetic_data.md exists"):
        experiment.main(args)
    fake_seed_experiment(experiment, str(tmp_path / "partial" / "seed_42"), 10.0, 0.8)
    with pytest.raises(FileNotFoundError, match="seed_44.*did not finish"):
        experiment.main(["--combine-only", "--seeds", "42,44", "--output-dir", str(tmp_path / "partial")])
    with pytest.raises(FileNotFoundError, match="does not exist: nothing to combine"):
        experiment.main(["--combine-only", "--seeds", "42,43", "--output-dir", str(tmp_path / "absent")])
    assert not (tmp_path / "absent").exists()  # no folder (nor log) made for a mistyped path


def test_seeds_run_the_whole_experiment_once_per_seed(experiment, tmp_path, monkeypatch):
    ran = []

    def record(output_dir, args):
        ran.append((os.path.relpath(output_dir, str(tmp_path)), args.opts))
        fake_seed_experiment(experiment, os.path.join(output_dir, "inner"), 1.0, 0.5)
        for name in ("synthetic_data.json", *experiment.VARIANTS):
            os.replace(os.path.join(output_dir, "inner", name), os.path.join(output_dir, name))

    monkeypatch.setattr(experiment, "run_experiment", record)
    assert experiment.main(["--seeds", "7,8", "--output-dir", str(tmp_path / "out"), "TEST.X", "1"]) == 0
    assert ran == [(os.path.join("out", "seed_7"), ["TEST.X", "1", "SEED", "7"]),
                   (os.path.join("out", "seed_8"), ["TEST.X", "1", "SEED", "8"])]
    assert "| a_without_hidden | 1.0 (1.0 / 1.0) |" in (tmp_path / "out" / "synthetic_data.md").read_text()
    with pytest.raises(SystemExit):
        experiment.parse_args(["--combine-only", "--seeds", "42,43"])  # which folder?
