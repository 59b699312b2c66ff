"""The main job: train MQ-Former from scratch on the built-in synthetic benchmark and evaluate every
task (`make train`).

    .venv/bin/python tools/train_shapes.py [--config-file configs/shapes/mqformer_tiny_shapes.yaml]
        [--output-dir DIR] [KEY VALUE ...]

Steps: generate (or reuse) `mqformer_shapes` under $DETECTRON2_DATASETS (default datasets/), train
with the same engine as train_net.py (detectron2's log shows progress and ETA every 20 iterations;
on the GPU when torch sees one, else on CPU with --cpu),
evaluate every DATASETS.TEST entry, then print one table and write, in the output folder:
`results.json` (all metrics), `summary.md` (the table) and `curves.png` (loss terms and validation
metrics over iterations). The output folder defaults to output/shapes/run_<time> and must not
exist yet (or be empty): a second run never overwrites the first.
"""
import argparse
import json
import logging
import os
import sys
import time
from typing import List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(ROOT, "configs", "shapes", "mqformer_tiny_shapes.yaml")
logger = logging.getLogger("train_shapes")
# Training minutes of the main job, as measured before training: the measurement over-estimates a
# step by ~17% (0.53 s measured, 0.45 s in the run on the same machine), so ~10.5 min of actual
# training. With set-up (<= 4 min on a fresh machine), generating and loading the benchmark (~1 min)
# and the final evaluation (1.3-2.5 min), `make train` stays within 20 minutes on machines of this
# kind that run a step in 0.45 s (the full 1,400 iterations) as on those that need 0.85 s.
DEFAULT_TRAIN_MINUTES = 12.5

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default=DEFAULT_CONFIG)
    parser.add_argument("--output-dir", default=None, help="default: output/shapes/run_<time>")
    parser.add_argument(
        "--train-minutes", type=float, default=DEFAULT_TRAIN_MINUTES,
        help="measure a few training steps here and shorten the config's schedule (SOLVER.MAX_ITER is "
             "the cap) to this many minutes of training; 0 = train the config's schedule as it is",
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return parser.parse_args(argv)


def device_arguments(gpu_available: bool) -> Tuple[List[str], List[str]]:
    """(engine flags, config overrides) choosing the device: `--cpu` without a GPU; with one,
    MODEL.DEVICE cuda (the tiny configs say cpu, so leaving --cpu out alone would train on CPU)."""
    return ([], ["MODEL.DEVICE", "cuda"]) if gpu_available else (["--cpu"], [])


def fresh_output_dir(requested: Optional[str]) -> str:
    """The run's folder, claimed for this process alone: `requested` (refused when it holds files)
    or a new output/shapes/run_<time>[_<n>] (unique also for runs started in the same second)."""
    from mqformer_d2.engine.run_dirs import claim_dir, claim_timestamped_dir

    if requested:
        return claim_dir(requested)
    return claim_timestamped_dir(os.path.join(ROOT, "output", "shapes"), "run_")


def main(argv=None) -> int:
    args = parse_args(argv)
    output_dir = fresh_output_dir(args.output_dir)
    import torch
    from detectron2.data import DatasetCatalog
    from detectron2.utils.logger import setup_logger

    setup_logger(output_dir, name="train_shapes")

    from mqformer_d2.engine import argument_parser
    from mqformer_d2.engine import main as engine_main
    from mqformer_d2.experiments.results import plot_training_curves, read_metrics, shapes_summary_table

    DatasetCatalog.get("mqformer_shapes_train")  # generates the benchmark on first use
    flags, opts = device_arguments(torch.cuda.is_available())
    opts += args.opts
    if args.train_minutes > 0:
        from mqformer_d2.engine import build_config
        from mqformer_d2.experiments.time_budget import fit_schedule_to_budget

        config = build_config(args.config_file, opts, cpu="--cpu" in flags)
        opts += fit_schedule_to_budget(config, args.train_minutes, logger)
    engine_args = argument_parser().parse_args(
        ["--config-file", args.config_file, *flags, *map(str, opts), "OUTPUT_DIR", output_dir]
    )
    start = time.perf_counter()
    results = engine_main(engine_args) or {}
    logger.info("training + evaluation took %.1f min", (time.perf_counter() - start) / 60)
    table = shapes_summary_table(results)
    logger.info("results on the mqformer_shapes validation splits:\n%s", table)
    with open(os.path.join(output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
    with open(os.path.join(output_dir, "summary.md"), "w") as f:
        f.write(table + "\n")
    metrics = read_metrics(os.path.join(output_dir, "metrics.json"))
    plot_training_curves({"main job": metrics}, os.path.join(output_dir, "curves.png"))
    logger.info("results.json, summary.md and curves.png are in %s", output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
