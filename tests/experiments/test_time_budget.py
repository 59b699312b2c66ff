"""Sizing the main job's schedule to a time budget."""
import pytest
import torch
from helpers import TINY_CONFIG, tiny_config, tiny_shapes_benchmark

from mqformer_d2.engine import build_config
from mqformer_d2.experiments.time_budget import measure_step_seconds, schedule_overrides


def _cfg():
    return build_config(TINY_CONFIG, ["SOLVER.MAX_ITER", 1000, "SOLVER.STEPS", (800,), "SOLVER.WARMUP_ITERS", 100,
                                      "SOLVER.CHECKPOINT_PERIOD", 500, "TEST.EVAL_PERIOD", 500])


def test_schedule_shrinks_in_proportion_to_what_fits():
    overrides = dict(zip(*[iter(schedule_overrides(_cfg(), step_seconds=0.6, minutes=5))] * 2))
    assert overrides["SOLVER.MAX_ITER"] == 500  # 300 s / 0.6 s
    assert overrides["SOLVER.STEPS"] == (400,)
    assert overrides["SOLVER.WARMUP_ITERS"] == 50
    assert overrides["SOLVER.CHECKPOINT_PERIOD"] == 250 and overrides["TEST.EVAL_PERIOD"] == 250
    # The overrides merge into a config as the command line gives them (strings).
    merged = build_config(TINY_CONFIG, [str(x) for x in schedule_overrides(_cfg(), 0.6, 5)])
    assert merged.SOLVER.MAX_ITER == 500 and tuple(merged.SOLVER.STEPS) == (400,)


def test_schedule_never_grows_beyond_the_config():
    overrides = dict(zip(*[iter(schedule_overrides(_cfg(), step_seconds=0.01, minutes=60))] * 2))
    assert overrides["SOLVER.MAX_ITER"] == 1000 and overrides["SOLVER.STEPS"] == (800,)


def test_schedule_rejects_a_zero_budget():
    with pytest.raises(ValueError, match="budget"):
        schedule_overrides(_cfg(), step_seconds=0.5, minutes=0)


def test_step_time_is_measured_on_real_training_steps(tmp_path):
    with tiny_shapes_benchmark(str(tmp_path)):
        cfg = tiny_config("DATASETS.TRAIN", "('mqformer_shapes_train',)", "DATASETS.TRAIN_SAMPLING_RATIOS", "[1.0]")
        before = torch.get_rng_state()
        seconds = measure_step_seconds(cfg, steps=1, warmup=1)
    assert 0 < seconds < 60
    assert torch.equal(torch.get_rng_state(), before)  # the run that follows starts from the same RNG
