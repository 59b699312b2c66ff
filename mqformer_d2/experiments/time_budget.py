"""Size a training schedule to a wall-time budget from a measured step time.

The main job must fit its time budget on the slower machines of a kind as well as on the faster
ones (the same 2-core CPU kind has been measured at 0.45 and 0.85 s per iteration). Fixing the
iteration count for the slowest machine would waste the faster ones, so the main job measures a
few real training steps (the configured model, optimizer and data loader) and shortens the
config's schedule to what fits: SOLVER.MAX_ITER is the cap, and the learning-rate steps, the
warm-up, the checkpoint and the evaluation periods shrink in proportion.
"""
import logging
import time
from typing import List

import torch
from detectron2.config import CfgNode
from detectron2.modeling import build_model

from ..data import UnifiedDatasetMapper, build_unified_train_loader
from ..engine.optimizer import build_optimizer

logger = logging.getLogger(__name__)


def measure_step_seconds(cfg: CfgNode, steps: int = 8, warmup: int = 6) -> float:
    """Median seconds of one training iteration of `cfg` (data loading, forward, backward,
    optimizer step), after `warmup` iterations; a throw-away model (the RNG state is restored).
    The first iterations of a fresh model and data-loader worker run ~25% slower than the rest of a
    run (measured: 0.56 s after 2 warm-up steps, 0.45 s in the run itself), hence the long warm-up."""
    rng_state = torch.get_rng_state()
    model = build_model(cfg).train()
    optimizer = build_optimizer(cfg, model)
    batches = iter(build_unified_train_loader(cfg, UnifiedDatasetMapper(cfg, True)))
    times = []
    for index in range(warmup + steps):
        start = time.perf_counter()
        losses = model(next(batches))
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()
        if index >= warmup:
            times.append(time.perf_counter() - start)
    torch.set_rng_state(rng_state)
    return sorted(times)[len(times) // 2]


def schedule_overrides(cfg: CfgNode, step_seconds: float, minutes: float) -> List:
    """KEY VALUE overrides that shorten `cfg`'s schedule to `minutes` of training at
    `step_seconds` per iteration (never lengthen it: SOLVER.MAX_ITER is the cap)."""
    if step_seconds <= 0 or minutes <= 0:
        raise ValueError(f"need a positive step time and budget, got {step_seconds} s and {minutes} min")
    solver = cfg.SOLVER
    max_iter = max(1, min(solver.MAX_ITER, int(minutes * 60 / step_seconds)))
    ratio = max_iter / solver.MAX_ITER
    steps = tuple(max(1, int(step * ratio)) for step in solver.STEPS)
    return [
        "SOLVER.MAX_ITER", max_iter,
        "SOLVER.STEPS", steps,
        "SOLVER.WARMUP_ITERS", max(1, int(solver.WARMUP_ITERS * ratio)),
        "SOLVER.CHECKPOINT_PERIOD", max(1, int(solver.CHECKPOINT_PERIOD * ratio)),
        # 0 stays 0 (evaluate only after the last iteration).
        "TEST.EVAL_PERIOD", int(cfg.TEST.EVAL_PERIOD * ratio),
    ]


def fit_schedule_to_budget(cfg: CfgNode, minutes: float, log: logging.Logger = logger) -> List:
    """Measure `cfg`'s step time here and return the `schedule_overrides` for `minutes`; the
    measurement and the schedule are logged to `log`."""
    seconds = measure_step_seconds(cfg)
    overrides = schedule_overrides(cfg, seconds, minutes)
    log.info("measured %.3f s per training iteration: %d of SOLVER.MAX_ITER %d fit in %.1f min "
             "(overrides %s)", seconds, overrides[1], cfg.SOLVER.MAX_ITER, minutes, overrides)
    return overrides
