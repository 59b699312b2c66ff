"""Query ablation (the paper's Table 2 and Section 4.1) on the built-in synthetic benchmark.

Trains learnable-only, conditional-only and mixed queries (configs/ablation/*.yaml: the main job's
model, data and schedule, 30 queries in total each) and reports for each: thing (instance) mask AP,
stuff mIoU, PQ, referring mIoU, open-vocabulary suite mean AP, and which query type won the
Hungarian matching of the validation set's thing and stuff targets (shares in %).

    .venv/bin/python tools/query_ablation.py [--variants learnable_only conditional_only mixed]
        [--seeds 42,43] [--output-dir DIR] [KEY VALUE ...]

Writes DIR/ablation.md (the table), DIR/ablation.json and DIR/ablation_curves.png (losses and
validation metrics of the runs); each run's own folder is DIR/<variant>/ (a main-job run:
`tools/train_shapes.py` with that variant's config, in a process of its own), or
DIR/<variant>/seed_<N>/ with `--seeds`. With several seeds every cell of the table is the mean
over the seeds followed by the per-seed values, e.g. "12.1 (11.5 / 12.7)".
"""
import argparse
import json
import logging
import os
import random
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

from mqformer_d2.experiments.seeds import seed_list, seed_spread, seeds_table
from mqformer_d2.registration import add_register_module_argument, import_registration_modules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ("learnable_only", "conditional_only", "mixed")
MATCHING_DATASET = "mqformer_shapes_val"  # things (with boxes) and stuff (without) in one split
logger = logging.getLogger("query_ablation")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--seeds", type=seed_list, default=None,
                        help="comma-separated, e.g. 42,43: train every variant once per seed (SEED "
                             "override); default: once, with the config's SEED")
    parser.add_argument("--output-dir", default=None, help="default: output/query_ablation/run_<time>")
    add_register_module_argument(parser)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for every variant")
    args = parser.parse_args(argv)
    import_registration_modules(args.register_module)
    return args


def planned_runs(args) -> List[Tuple[str, Optional[int], str, List[str]]]:
    """(variant, seed, run folder relative to the output dir, config overrides) of every run, seeds
    outermost, so that a run cut short still has every variant of the first seed."""
    runs = []
    for seed in args.seeds or [None]:
        for variant in args.variants:
            if seed is None:
                runs.append((variant, None, variant, list(args.opts)))
            else:
                runs.append((variant, seed, f"{variant}/seed_{seed}", list(args.opts) + ["SEED", str(seed)]))
    return runs


def train_variant(variant: str, output_dir: str, opts: List[str]) -> Dict:
    """Train and evaluate one variant with the main job's tool, in its own process (so that every
    run has its own loggers and registries); returns its results.json."""
    config = os.path.join(ROOT, "configs", "ablation", f"{variant}.yaml")
    command = [sys.executable, os.path.join(ROOT, "tools", "train_shapes.py"), "--config-file", config,
               "--output-dir", output_dir, "--train-minutes", "0", *opts]  # every variant: the same schedule
    subprocess.run(command, check=True)
    with open(os.path.join(output_dir, "results.json")) as f:
        return json.load(f)


def query_type_shares(output_dir: str, batch_size: int = 8) -> Dict[str, float]:
    """Which query type won the final layer's matching of MATCHING_DATASET's targets, in %."""
    import torch
    from detectron2.data import DatasetCatalog
    from detectron2.utils.env import seed_all_rng

    from mqformer_d2.analysis import load_trained_model, match_queries, run_config
    from mqformer_d2.data import UnifiedDatasetMapper

    cfg = run_config(output_dir)
    model = load_trained_model(cfg, os.path.join(output_dir, "model_final.pth"))
    seed_all_rng(0)  # the matcher's mask cost samples random points: the same ones on every call
    # Training-style targets at the original size, with every class name in the vocabulary.
    mapper = UnifiedDatasetMapper(True, augmentations=[], image_format=cfg.INPUT.FORMAT,
                                  num_negative_texts=1000, rng=random.Random(0))
    records = [dict(r, dataset_name=MATCHING_DATASET) for r in DatasetCatalog.get(MATCHING_DATASET)]
    counts = torch.zeros(2, 2, dtype=torch.int64)  # [thing, stuff] x [learnable, conditional]
    for start in range(0, len(records), batch_size):
        batch = [mapper(r) for r in records[start: start + batch_size]]
        for match in match_queries(model, batch):
            is_stuff = (~match["has_box"]).long().cpu()
            counts.index_put_((is_stuff, match["query_type"].long().cpu()), torch.ones_like(is_stuff), accumulate=True)
    things, stuff = counts.sum(1).clamp_min(1).tolist()
    return {
        "things_by_conditional_%": 100.0 * counts[0, 1].item() / things,
        "things_by_learnable_%": 100.0 * counts[0, 0].item() / things,
        "stuff_by_learnable_%": 100.0 * counts[1, 0].item() / stuff,
        "stuff_by_conditional_%": 100.0 * counts[1, 1].item() / stuff,
        "matched_things": counts[0].sum().item(),
        "matched_stuff": counts[1].sum().item(),
    }


def variant_row(results: Dict, shares: Dict[str, float]) -> Dict[str, float]:
    """The ablation's columns for one variant."""
    from mqformer_d2.data.shapes.vocabulary import STUFF_CLASSES
    from mqformer_d2.experiments.results import find_metric, stuff_miou

    return {
        "thing AP": find_metric(results, "mqformer_shapes_val_instance", "segm", "AP"),
        "stuff mIoU": stuff_miou(results, "mqformer_shapes_val_semantic", STUFF_CLASSES),
        "PQ": find_metric(results, "mqformer_shapes_val_panoptic", "panoptic_seg", "PQ"),
        "referring mIoU": find_metric(results, "mqformer_shapes_val_referring", "referring", "mIoU"),
        "open-vocab mean AP": find_metric(results, "mqformer_shapes_seginw", None, "mean_segm_AP"),
        "things won by conditional (%)": shares["things_by_conditional_%"],
        "stuff won by learnable (%)": shares["stuff_by_learnable_%"],
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    from mqformer_d2.engine.run_dirs import claim_dir, claim_timestamped_dir

    if args.output_dir:
        output_dir = claim_dir(args.output_dir)
    else:
        output_dir = claim_timestamped_dir(os.path.join(ROOT, "output", "query_ablation"), "run_")
    from detectron2.utils.logger import setup_logger

    from mqformer_d2.experiments.results import plot_training_curves, read_metrics

    setup_logger(output_dir, name="query_ablation")
    rows, curves, everything = {v: [] for v in args.variants}, {}, {v: {} for v in args.variants}
    for variant, seed, run_name, opts in planned_runs(args):
        run_dir = os.path.join(output_dir, run_name)
        start = time.perf_counter()
        results = train_variant(variant, run_dir, opts)
        shares = query_type_shares(run_dir)
        logger.info("%s: %.1f min; matched-query shares %s", run_name, (time.perf_counter() - start) / 60, shares)
        rows[variant].append(variant_row(results, shares))
        curves[run_name] = read_metrics(os.path.join(run_dir, "metrics.json"))
        everything[variant]["config seed" if seed is None else f"seed {seed}"] = {"results": results, "shares": shares}
    for variant in args.variants:
        everything[variant]["spread over seeds"] = seed_spread({variant: rows[variant]})[variant]
    table = seeds_table(rows, "queries")
    logger.info("query ablation:\n%s", table)
    with open(os.path.join(output_dir, "ablation.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(output_dir, "ablation.json"), "w") as f:
        json.dump(everything, f, indent=2, sort_keys=True)
    plot_training_curves(curves, os.path.join(output_dir, "ablation_curves.png"), losses=("total_loss",))
    logger.info("ablation.md, ablation.json and ablation_curves.png are in %s", output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
