#!/usr/bin/env python
"""Does synthetic data help? (paper, section 3.4) Measured on the built-in synthetic benchmark.

Hides the masks of part of the training split (its boxes are kept), synthesizes them with a
checkpoint trained on the rest, and compares the main job's recipe trained

    (a) without the hidden part,
    (b) with the hidden part's synthetic masks (tools/synthesize_masks.py on its boxes, with (a)'s
        checkpoint),
    (c) with the hidden part's real masks,
    (d) with the hidden part's real masks and synthetic captions (tools/synthesize_captions.py:
        every object's target text is one of its captions instead of its class name),

plus the synthetic masks' mIoU against the hidden ground truth.

    .venv/bin/python tools/synthetic_data_experiment.py [--hidden-fraction 0.5] [--split-seed 0]
        [--seeds 42,43] [--config-file CFG] [--output-dir DIR] [KEY VALUE ...]

The split: a seeded random `--hidden-fraction` of the images of `mqformer_shapes_train` (the
panoptic split, whose images the referring split shares). Every variant trains on the kept images'
panoptic and referring annotations and on the untouched foreground and box-only splits; the hidden
images enter (b)-(d) as instance data (thing masks, no stuff), drawn in proportion to their share of
the panoptic images. Everything else (model, schedule, seed) is the config's, i.e. the main job's.

Writes DIR/split.json, DIR/synthetic_masks.json, DIR/synthetic_captions.json, one training run per
variant in DIR/<variant>/ (a main job run, `mqformer_d2.experiments.main_job`, in a process of its own), and the results:
DIR/synthetic_data.md (table), DIR/synthetic_data.json and DIR/synthetic_data_curves.png.

With `--seeds 42,43` the whole experiment runs once per training seed (SEED override; the teacher
(a), hence the synthetic masks, change with it; the hidden images stay `--split-seed`'s) in
DIR/seed_<N>/, and DIR/synthetic_data.md gives every cell as the mean over the seeds followed by
each seed's value, e.g. "12.1 (11.5 / 12.7)". `--combine-only --seeds 42,43 --output-dir DIR`
trains nothing and writes that table from finished DIR/seed_<N>/ experiments.
"""
import argparse
import json
import logging
import os
import random
import subprocess
import sys
import time
from typing import Dict, List, Tuple

from mqformer_d2.experiments.seeds import seed_list, seed_spread, seeds_table
from mqformer_d2.registration import add_register_module_argument, import_registration_modules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(ROOT, "configs", "shapes", "mqformer_tiny_shapes.yaml")

PANOPTIC = "mqformer_shapes_train"
REFERRING = "mqformer_shapes_train_referring"
INSTANCE = "mqformer_shapes_train_instance"
UNTOUCHED = (("mqformer_shapes_train_foreground", 1.0), ("mqformer_shapes_train_detection", 1.0))
PANOPTIC_WEIGHT, REFERRING_WEIGHT = 4.0, 2.0  # the main job's sampling ratios (4:2:1:1)

KEPT = PANOPTIC + "-kept"
KEPT_REFERRING = REFERRING + "-kept"
HIDDEN = INSTANCE + "-hidden"  # the hidden images' thing masks: the reference and variant (c)
HIDDEN_BOXES = INSTANCE + "-hidden-boxes"  # the same annotations without masks: what is prompted
SYNTHETIC_MASKS = HIDDEN_BOXES + "-syn-m"
SYNTHETIC_CAPTIONS = HIDDEN + "-syn-c"

HIDDEN_DATASET = {"a_without_hidden": None, "b_synthetic_masks": SYNTHETIC_MASKS,
                  "c_real_masks": HIDDEN, "d_real_masks_synthetic_captions": SYNTHETIC_CAPTIONS}
VARIANTS = tuple(HIDDEN_DATASET)
SPLIT_FILE, MASKS_FILE, CAPTIONS_FILE = "split.json", "synthetic_masks.json", "synthetic_captions.json"
logger = logging.getLogger("synthetic_data_experiment")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden-fraction", type=float, default=0.5, help="share of the images whose masks are hidden")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the choice of hidden images")
    parser.add_argument("--config-file", default=DEFAULT_CONFIG, help="every variant's config (default: the main job's)")
    parser.add_argument("--seeds", type=seed_list, default=None,
                        help="comma-separated, e.g. 42,43: the whole experiment once per training seed, in "
                             "DIR/seed_<N>/, then a table of means; default: once, with the config's SEED")
    parser.add_argument("--combine-only", action="store_true",
                        help="with --seeds and --output-dir: train nothing, combine the finished DIR/seed_<N>/")
    parser.add_argument("--output-dir", default=None, help="default: output/synthetic_data/run_<time>")
    parser.add_argument("--stage", default=None, help=argparse.SUPPRESS)  # internal: one step in its own process
    add_register_module_argument(parser)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for every training run")
    args = parser.parse_args(argv)
    import_registration_modules(args.register_module)
    if not 0.0 < args.hidden_fraction < 1.0:
        parser.error(f"--hidden-fraction must be in (0, 1), got {args.hidden_fraction}")
    if args.combine_only and not (args.seeds and args.output_dir):
        parser.error("--combine-only needs --seeds and the --output-dir that holds seed_<N>/")
    return args


# ---------------------------------------------------------------------------------------- datasets

def choose_hidden_images(hidden_fraction: float, seed: int) -> List:
    """A seeded random `hidden_fraction` of the panoptic training images' ids, sorted."""
    from detectron2.data import DatasetCatalog

    image_ids = sorted(r["image_id"] for r in DatasetCatalog.get(PANOPTIC))
    count = round(hidden_fraction * len(image_ids))
    if not 0 < count < len(image_ids):
        raise ValueError(f"--hidden-fraction {hidden_fraction} of {len(image_ids)} images of '{PANOPTIC}' "
                         "leaves no hidden or no kept image")
    return sorted(random.Random(seed).sample(image_ids, count))


def write_split(experiment_dir: str, hidden_fraction: float, seed: int) -> Dict:
    """Choose the hidden images and record them in experiment_dir/split.json."""
    from detectron2.data import DatasetCatalog

    hidden = choose_hidden_images(hidden_fraction, seed)
    split = {"source": PANOPTIC, "hidden_fraction": hidden_fraction, "seed": seed,
             "num_images": len(DatasetCatalog.get(PANOPTIC)), "hidden_image_ids": hidden}
    with open(os.path.join(experiment_dir, SPLIT_FILE), "w") as f:
        json.dump(split, f)
    return split


def register_experiment_datasets(experiment_dir: str) -> None:
    """Register the split's views (from experiment_dir/split.json) and whichever synthetic files
    exist in experiment_dir. Every process of the experiment calls this, so all see the same data."""
    from detectron2.data import DatasetCatalog

    from mqformer_d2.synthetic import (
        register_subset,
        register_synthetic_captions,
        register_synthetic_masks,
        synthetic_image_root,
    )

    with open(os.path.join(experiment_dir, SPLIT_FILE)) as f:
        hidden = set(json.load(f)["hidden_image_ids"])
    kept = [r["image_id"] for r in DatasetCatalog.get(PANOPTIC) if r["image_id"] not in hidden]
    register_subset(KEPT, PANOPTIC, kept)
    register_subset(KEPT_REFERRING, REFERRING, kept)
    register_subset(HIDDEN, INSTANCE, sorted(hidden))
    register_subset(HIDDEN_BOXES, INSTANCE, sorted(hidden), drop_masks=True)
    for file_name, register, name, source in ((MASKS_FILE, register_synthetic_masks, SYNTHETIC_MASKS, HIDDEN_BOXES),
                                              (CAPTIONS_FILE, register_synthetic_captions, SYNTHETIC_CAPTIONS, HIDDEN)):
        path = os.path.join(experiment_dir, file_name)
        if os.path.exists(path):
            register(name, path, synthetic_image_root(path), metadata_from=source)


def training_mixture(variant: str, hidden_fraction: float) -> List[Tuple[str, float]]:
    """(dataset, sampling ratio) of a variant: the main job's 4:2:1:1 with the panoptic share split
    between kept and hidden images by their numbers ((a): all to the kept ones)."""
    hidden_dataset = HIDDEN_DATASET[variant]
    if hidden_dataset is None:
        panoptic = [(KEPT, PANOPTIC_WEIGHT)]
    else:
        panoptic = [(KEPT, PANOPTIC_WEIGHT * (1 - hidden_fraction)), (hidden_dataset, PANOPTIC_WEIGHT * hidden_fraction)]
    return panoptic + [(KEPT_REFERRING, REFERRING_WEIGHT), *UNTOUCHED]


# ---------------------------------------------------------------------------------------- stages

def stage_command(experiment_dir: str, stage: str, args) -> List[str]:
    return [sys.executable, os.path.abspath(__file__), "--stage", stage, "--output-dir", experiment_dir,
            "--hidden-fraction", str(args.hidden_fraction), "--config-file", args.config_file, *args.opts]


def run_stage(experiment_dir: str, stage: str, args) -> None:
    """One step in a process of its own (own loggers, registries and threads), with the
    experiment's datasets registered there."""
    subprocess.run(stage_command(experiment_dir, stage, args), check=True)


def train_stage(experiment_dir: str, variant: str, args) -> None:
    """Inside a stage process: train and evaluate `variant` as the main job does."""
    from mqformer_d2.experiments import main_job

    names, ratios = zip(*training_mixture(variant, args.hidden_fraction))
    main_job.main(["--config-file", args.config_file, "--output-dir", os.path.join(experiment_dir, variant),
                   "--train-minutes", "0",  # every variant: the same schedule
                   *args.opts, "DATASETS.TRAIN", repr(tuple(names)),
                   "DATASETS.TRAIN_SAMPLING_RATIOS", repr([round(r, 6) for r in ratios])], root=ROOT)


def synthesize_masks_stage(experiment_dir: str, args) -> None:
    """Inside a stage process: masks for the hidden boxes with variant (a)'s final checkpoint."""
    from detectron2.utils.logger import setup_logger

    from mqformer_d2.synthetic import MaskSynthesisJob, synthesize_masks

    setup_logger(name="mqformer_d2", distributed_rank=0)  # as process_main's call: one handler, not two
    run_dir = os.path.join(experiment_dir, "a_without_hidden")
    synthesize_masks(MaskSynthesisJob(config_file=os.path.join(run_dir, "config.yaml"), dataset=HIDDEN_BOXES,
                                      output=os.path.join(experiment_dir, MASKS_FILE), cpu=True,
                                      opts=["MODEL.WEIGHTS", os.path.join(run_dir, "model_final.pth")]))


def execute_stage(args) -> None:
    """`--stage`: train:<variant> or masks, in this process."""
    import mqformer_d2  # noqa: F401  (registers the benchmark)

    register_experiment_datasets(args.output_dir)
    if args.stage == "masks":
        synthesize_masks_stage(args.output_dir, args)
    elif args.stage.startswith("train:") and args.stage[len("train:"):] in VARIANTS:
        train_stage(args.output_dir, args.stage[len("train:"):], args)
    else:
        raise ValueError(f"unknown --stage {args.stage!r}")


# ---------------------------------------------------------------------------------------- results

def variant_row(results: Dict) -> Dict[str, float]:
    from mqformer_d2.experiments.results import find_metric

    return {
        "instance mask AP": find_metric(results, "mqformer_shapes_val_instance", "segm", "AP"),
        "semantic mIoU": find_metric(results, "mqformer_shapes_val_semantic", "sem_seg", "mIoU"),
        "PQ": find_metric(results, "mqformer_shapes_val_panoptic", "panoptic_seg", "PQ"),
        "referring mIoU": find_metric(results, "mqformer_shapes_val_referring", "referring", "mIoU"),
        "referring cIoU": find_metric(results, "mqformer_shapes_val_referring", "referring", "cIoU"),
        "open-vocab mean AP": find_metric(results, "mqformer_shapes_seginw", None, "mean_segm_AP"),
    }


def mask_scores_line(mask_scores: Dict, seed=None) -> str:
    """The synthetic masks' quality against the hidden ground truth, in words."""
    which = "" if seed is None else f" (seed {seed}'s teacher)"
    return (f"Synthetic masks{which} against the hidden ground truth: mIoU {100 * mask_scores['miou']:.1f} over "
            f"the {mask_scores['kept']} of {mask_scores['total']} masks kept by the quality filter "
            f"({100 * mask_scores['miou_all']:.1f} counting dropped masks as 0).")


def results_table(rows: Dict[str, List[Dict[str, float]]], mask_lines: List[str]) -> str:
    """Markdown table (one row per variant, `rows[variant]`: one dict of columns per seed), then the
    synthetic masks' quality."""
    return "\n".join([seeds_table(rows, "training data"), "", *mask_lines])


def read_results(run_dir: str) -> Dict:
    with open(os.path.join(run_dir, "results.json")) as f:
        return json.load(f)


def prepare_output_dir(requested) -> str:
    """`requested` (refused when it holds files) or a new output/synthetic_data/run_<time>[_<n>],
    claimed for this process alone."""
    from mqformer_d2.engine.run_dirs import claim_dir, claim_timestamped_dir

    if requested:
        return claim_dir(requested)
    return claim_timestamped_dir(os.path.join(ROOT, "output", "synthetic_data"), "run_")


def run_experiment(output_dir: str, args) -> None:
    """The whole experiment in `output_dir` (claimed) with the config overrides `args.opts`:
    split, captions, the four trainings, mask synthesis; writes the table, json and curves."""
    from mqformer_d2.experiments.results import plot_training_curves, read_metrics
    from mqformer_d2.synthetic import synthesize_captions, synthetic_image_root, synthetic_mask_iou

    split = write_split(output_dir, args.hidden_fraction, args.split_seed)
    logger.info("%s: hiding the masks of %d of %d images of %s", output_dir, len(split["hidden_image_ids"]),
                split["num_images"], PANOPTIC)
    register_experiment_datasets(output_dir)
    synthesize_captions(HIDDEN, os.path.join(output_dir, CAPTIONS_FILE))
    timings = {}
    for stage in ("train:a_without_hidden", "masks", *(f"train:{v}" for v in VARIANTS[1:])):
        start = time.perf_counter()
        run_stage(output_dir, stage, args)
        timings[stage] = (time.perf_counter() - start) / 60
        logger.info("stage %s took %.1f min", stage, timings[stage])
        if stage == "masks":
            masks_file = os.path.join(output_dir, MASKS_FILE)
            mask_scores = synthetic_mask_iou(masks_file, synthetic_image_root(masks_file), HIDDEN)
            logger.info("synthetic masks vs hidden ground truth: %s", mask_scores)
    results = {v: read_results(os.path.join(output_dir, v)) for v in VARIANTS}
    table = results_table({v: [variant_row(r)] for v, r in results.items()}, [mask_scores_line(mask_scores)])
    logger.info("synthetic data experiment:\n%s", table)
    with open(os.path.join(output_dir, "synthetic_data.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(output_dir, "synthetic_data.json"), "w") as f:
        json.dump({"split": {k: v for k, v in split.items() if k != "hidden_image_ids"}, "synthetic_masks": mask_scores,
                   "stage_minutes": timings, "results": results}, f, indent=2, sort_keys=True)
    curves = {v: read_metrics(os.path.join(output_dir, v, "metrics.json")) for v in VARIANTS}
    plot_training_curves(curves, os.path.join(output_dir, "synthetic_data_curves.png"))
    logger.info("synthetic_data.md, synthetic_data.json and synthetic_data_curves.png are in %s", output_dir)


def combine_seeds(output_dir: str, seeds: List[int]) -> None:
    """DIR/synthetic_data.{md,json} and DIR/synthetic_data_curves.png from the finished
    DIR/seed_<N>/ experiments: mean and per-seed value of every cell, and the spread."""
    from mqformer_d2.experiments.results import plot_training_curves, read_metrics

    per_seed, curves = {}, {}
    for seed in seeds:
        seed_dir = os.path.join(output_dir, f"seed_{seed}")
        path = os.path.join(seed_dir, "synthetic_data.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} is missing: the seed-{seed} experiment did not finish")
        with open(path) as f:
            per_seed[seed] = json.load(f)
        for variant in VARIANTS:
            curves[f"{variant} seed {seed}"] = read_metrics(os.path.join(seed_dir, variant, "metrics.json"))
    rows = {v: [variant_row(per_seed[s]["results"][v]) for s in seeds] for v in VARIANTS}
    table = results_table(rows, [mask_scores_line(per_seed[s]["synthetic_masks"], s) for s in seeds])
    logger.info("synthetic data experiment over seeds %s:\n%s", seeds, table)
    outputs = [os.path.join(output_dir, name) for name in
               ("synthetic_data.md", "synthetic_data.json", "synthetic_data_curves.png")]
    for path in outputs:
        if os.path.exists(path):
            raise FileExistsError(f"{path} exists; a combination never overwrites an earlier one")
    with open(outputs[0], "w") as f:
        f.write(table + "\n")
    with open(outputs[1], "w") as f:
        masks = {str(s): per_seed[s]["synthetic_masks"] for s in seeds}
        json.dump({"seeds": seeds, "rows": rows, "spread over seeds": seed_spread(rows), "synthetic_masks": masks},
                  f, indent=2, sort_keys=True)
    plot_training_curves(curves, outputs[2], losses=("total_loss",))
    logger.info("synthetic_data.md, synthetic_data.json and synthetic_data_curves.png are in %s", output_dir)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.stage:
        execute_stage(args)
        return 0
    from detectron2.utils.logger import setup_logger

    import mqformer_d2  # noqa: F401
    from mqformer_d2.engine.run_dirs import claim_dir

    if args.combine_only and not os.path.isdir(args.output_dir):
        raise FileNotFoundError(f"--output-dir {args.output_dir} does not exist: nothing to combine")
    output_dir = args.output_dir if args.combine_only else prepare_output_dir(args.output_dir)
    setup_logger(output_dir, name="synthetic_data_experiment")
    if args.combine_only:
        combine_seeds(output_dir, args.seeds)
        return 0
    if not args.seeds:
        run_experiment(output_dir, args)
        return 0
    for seed in args.seeds:
        seed_args = argparse.Namespace(**vars(args))
        seed_args.opts = [*args.opts, "SEED", str(seed)]
        run_experiment(claim_dir(os.path.join(output_dir, f"seed_{seed}")), seed_args)
    combine_seeds(output_dir, args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
