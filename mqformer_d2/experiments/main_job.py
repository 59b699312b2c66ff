"""The main job: train MQ-Former from scratch on the built-in synthetic benchmark and evaluate every
task (`make train`; command line `tools/train_shapes.py`, which calls `main(argv, root=ROOT)`).

    .venv/bin/python tools/train_shapes.py [--config-file configs/shapes/mqformer_tiny_shapes.yaml]
        [--output-dir DIR] [KEY VALUE ...]

Steps: generate (or reuse) `mqformer_shapes` under $DETECTRON2_DATASETS (default datasets/), train
with the same engine as train_net.py (detectron2's log shows progress and ETA every 20 iterations;
on the GPU when torch sees one, else on CPU: the device is chosen here, there is no --cpu flag),
evaluate every DATASETS.TEST entry, then print one table and write, in the output folder:
`results.json` (all metrics), `summary.md` (the table) and `curves.png` (loss terms and validation
metrics over iterations). The output folder defaults to output/shapes/run_<time> and must not
exist yet (or be empty): a second run never overwrites the first.
"""
import argparse
import json
import logging
import os
import time
from typing import Dict, List, Optional, Tuple

import torch
from detectron2.data import DatasetCatalog
from detectron2.utils.logger import setup_logger

from ..engine import argument_parser, build_config
from ..engine import main as engine_main
from ..engine.run_dirs import claim_dir, claim_timestamped_dir
from .results import plot_training_curves, read_metrics, shapes_summary_table
from .time_budget import fit_schedule_to_budget

# The main job's config, relative to the repository root (`main`'s `root`).
DEFAULT_CONFIG = os.path.join("configs", "shapes", "mqformer_tiny_shapes.yaml")
# Named after the command, which is how users know the main job's log lines.
logger = logging.getLogger("train_shapes")
# Training minutes of the main job, as measured before training: the measurement over-estimates a
# step by ~17% (0.53 s measured, 0.45 s in the run on the same machine), so ~10.5 min of actual
# training. With set-up (<= 4 min on a fresh machine), generating and loading the benchmark (~1 min)
# and the final evaluation (1.3-2.5 min), `make train` stays within 20 minutes on machines of this
# kind that run a step in 0.45 s (the full 1,400 iterations) as on those that need 0.85 s.
DEFAULT_TRAIN_MINUTES = 12.5


def parse_args(argv: Optional[List[str]] = None, root: str = ".") -> argparse.Namespace:
    """The command line of tools/train_shapes.py; the default config is the one under `root`."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default=os.path.join(root, DEFAULT_CONFIG))
    parser.add_argument("--output-dir", default=None, help="default: output/shapes/run_<time>")
    parser.add_argument(
        "--train-minutes", type=float, default=DEFAULT_TRAIN_MINUTES,
        help="measure a few training steps here and shorten the config's schedule (SOLVER.MAX_ITER is "
             "the cap) to this many minutes of training; 0 = train the config's schedule as it is",
    )
    from mqformer_d2.registration import add_register_module_argument, import_registration_modules

    add_register_module_argument(parser)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = parser.parse_args(argv)
    import_registration_modules(args.register_module)
    return args


def device_arguments(gpu_available: bool) -> Tuple[List[str], List[str]]:
    """(engine flags, config overrides) choosing the device: `--cpu` without a GPU; with one,
    MODEL.DEVICE cuda (the tiny configs say cpu, so leaving --cpu out alone would train on CPU)."""
    return ([], ["MODEL.DEVICE", "cuda"]) if gpu_available else (["--cpu"], [])


def fresh_output_dir(requested: Optional[str], root: str) -> str:
    """The run's folder, claimed for this process alone: `requested` (refused when it holds files)
    or a new `root`/output/shapes/run_<time>[_<n>] (unique also for runs started in the same second)."""
    if requested:
        return claim_dir(requested)
    return claim_timestamped_dir(os.path.join(root, "output", "shapes"), "run_")


def main(argv: Optional[List[str]], *, root: str) -> int:
    """Run the main job with the command line `argv` (tools/train_shapes.py's arguments); `root` is
    the repository root, which holds the default config and output/. Returns the exit status."""
    args = parse_args(argv, root)
    output_dir = fresh_output_dir(args.output_dir, root)
    setup_logger(output_dir, name="train_shapes")
    DatasetCatalog.get("mqformer_shapes_train")  # generates the benchmark on first use
    flags, opts = device_arguments(torch.cuda.is_available())
    opts += args.opts
    if args.train_minutes > 0:
        config = build_config(args.config_file, opts, cpu="--cpu" in flags)
        opts += fit_schedule_to_budget(config, args.train_minutes, logger)
    engine_args = argument_parser().parse_args(
        ["--config-file", args.config_file, *flags, *map(str, opts), "OUTPUT_DIR", output_dir]
    )
    start = time.perf_counter()
    results = engine_main(engine_args) or {}
    logger.info("training + evaluation took %.1f min", (time.perf_counter() - start) / 60)
    write_outputs(output_dir, results)
    return 0


def write_outputs(output_dir: str, results: Dict) -> None:
    """Log the summary table and write results.json, summary.md and curves.png to `output_dir`."""
    table = shapes_summary_table(results)
    logger.info("results on the mqformer_shapes validation splits:\n%s", table)
    with open(os.path.join(output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
    with open(os.path.join(output_dir, "summary.md"), "w") as f:
        f.write(table + "\n")
    metrics = read_metrics(os.path.join(output_dir, "metrics.json"))
    plot_training_curves({"main job": metrics}, os.path.join(output_dir, "curves.png"))
    logger.info("results.json, summary.md and curves.png are in %s", output_dir)
