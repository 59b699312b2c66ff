"""Reading results back (mqformer_d2.experiments.results) and the main job's output-folder rule."""
import argparse
import json
import math

import pytest
from helpers import load_script

from mqformer_d2.experiments import main_job
from mqformer_d2.experiments.results import (
    find_metric,
    plot_training_curves,
    read_metrics,
    shapes_summary_table,
    stuff_miou,
)
from mqformer_d2.experiments.seeds import seed_list, seed_spread, seeds_table

RESULTS = {
    "mqformer_shapes_val_instance": {"segm": {"AP": 41.25}},
    "mqformer_shapes_val_semantic": {"sem_seg": {"mIoU": 70.0, "IoU-sky": 90.0, "IoU-grass": 80.0, "IoU-circle": 10.0}},
    "mqformer_shapes_val_foreground": {"foreground": {"MAE": 0.0312, "maxF": float("nan")}},
    "mqformer_shapes_seginw": {"mean_segm_AP": 33.3},
}


def test_find_metric_reads_nested_and_suite_results():
    assert find_metric(RESULTS, "mqformer_shapes_val_instance", "segm", "AP") == 41.25
    assert find_metric(RESULTS, "mqformer_shapes_seginw", None, "mean_segm_AP") == 33.3
    assert find_metric(RESULTS, "mqformer_shapes_val_foreground", "foreground", "maxF") is None  # NaN
    assert find_metric(RESULTS, "absent", "segm", "AP") is None


def test_summary_table_shows_values_targets_and_missing_rows():
    table = shapes_summary_table(RESULTS)
    assert "| instance mask AP | 41.2 | >= 40 |" in table
    assert "| foreground MAE | 0.031 | - |" in table
    assert "| panoptic PQ | missing | >= 60 |" in table
    assert "| open-vocab suite mean mask AP | 33.3 | >= 30 |" in table


def test_stuff_miou_averages_only_the_stuff_classes():
    assert math.isclose(stuff_miou(RESULTS, "mqformer_shapes_val_semantic", ["sky", "grass", "water"]), 85.0)
    assert stuff_miou(RESULTS, "mqformer_shapes_val_instance", ["sky"]) is None


def test_curves_png_from_metrics_json(tmp_path):
    metrics_file = tmp_path / "metrics.json"
    lines = [{"iteration": i, "total_loss": 10.0 / (i + 1), "loss_ce": 1.0} for i in range(0, 100, 20)]
    lines.append({"iteration": 99, "mqformer_shapes_val_instance/segm/AP": 5.0})
    metrics_file.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    records = read_metrics(str(metrics_file))
    assert len(records) == 6
    plot_training_curves({"a": records, "b": records}, str(tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_main_job_never_reuses_a_folder_with_files(tmp_path):
    empty = tmp_path / "empty"
    assert main_job.fresh_output_dir(str(empty), str(tmp_path)) == str(empty) and empty.is_dir()
    (empty / "model_final.pth").write_bytes(b"weights")
    with pytest.raises(FileExistsError, match="already holds files"):
        main_job.fresh_output_dir(str(empty), str(tmp_path))
    assert (empty / "model_final.pth").read_bytes() == b"weights"


def test_main_job_passes_cpu_only_without_a_gpu():
    assert main_job.device_arguments(gpu_available=False) == (["--cpu"], [])
    # With a GPU the tiny config's MODEL.DEVICE cpu is overridden: dropping --cpu alone would not do.
    assert main_job.device_arguments(gpu_available=True) == ([], ["MODEL.DEVICE", "cuda"])


def test_seeds_table_has_a_row_per_variant():
    rows = {"learnable_only": [{"thing AP": 1.0, "PQ": None}], "mixed": [{"thing AP": 2.5, "PQ": 40.0}]}
    table = seeds_table(rows, "queries").splitlines()
    assert table[0] == "| queries | thing AP | PQ |" and table[1] == "|---|---|---|"
    assert table[2:] == ["| learnable_only | 1.0 | - |", "| mixed | 2.5 | 40.0 |"]


def test_seeds_table_gives_mean_and_each_seed():
    rows = {"mixed": [{"thing AP": 11.5, "PQ": 40.0}, {"thing AP": 12.7, "PQ": None}]}
    assert seeds_table(rows, "queries").splitlines()[2] == "| mixed | 12.1 (11.5 / 12.7) | - |"
    spread = seed_spread(rows)["mixed"]
    assert set(spread) == {"thing AP"}  # a column with a missing seed has no spread
    assert spread["thing AP"]["mean"] == pytest.approx(12.1) and spread["thing AP"]["range"] == pytest.approx(1.2)


def test_seed_list_refuses_repeats_and_non_integers():
    assert seed_list("42,43") == [42, 43]
    for bad in ("42,42", "42;43", "a"):
        with pytest.raises(argparse.ArgumentTypeError):
            seed_list(bad)


def test_ablation_trains_every_variant_once_per_seed_first_seed_first():
    query_ablation = load_script("tools/query_ablation.py")
    args = query_ablation.parse_args(["--variants", "learnable_only", "mixed", "--seeds", "42,43", "TEST.X", "1"])
    assert query_ablation.planned_runs(args) == [
        ("learnable_only", 42, "learnable_only/seed_42", ["TEST.X", "1", "SEED", "42"]),
        ("mixed", 42, "mixed/seed_42", ["TEST.X", "1", "SEED", "42"]),
        ("learnable_only", 43, "learnable_only/seed_43", ["TEST.X", "1", "SEED", "43"]),
        ("mixed", 43, "mixed/seed_43", ["TEST.X", "1", "SEED", "43"])]
    single = query_ablation.parse_args(["--variants", "mixed"])
    assert query_ablation.planned_runs(single) == [("mixed", None, "mixed", [])]
    with pytest.raises(SystemExit):
        query_ablation.parse_args(["--seeds", "42,42"])
