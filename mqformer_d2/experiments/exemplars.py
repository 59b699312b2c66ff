"""The exemplar experiment (`make exemplars`; command line `tools/exemplar_experiment.py`): from a
trained main-job run, train the exemplar stage once per pooling and seed, and evaluate mask AP of
the validation instances prompted by K = 1, 3, 5 exemplars from the training split, beside
text-prompted AP on the same classes, and the open-vocabulary suite's held-out colour-shape
combinations (`ColorShapes`) prompted by exemplars from the suite's own training split.

    .venv/bin/python tools/exemplar_experiment.py [--run-dir output/shapes/run_X] [--output-dir DIR]
        [--poolings mean,max,attention,gated_attention] [--seeds 42,43] [--iterations 300]
        [--exemplar-sets FILE]

The run's backbone, pixel decoder, decoder and text encoder stay frozen (model_final.pth of
--run-dir, default: the newest output/shapes/run_* that has one); only the exemplar encoder trains.
Everything goes to a new output/exemplars/run_<time>/: exemplar_sets.json (drawn once with
--sets-seed unless --exemplar-sets names an existing file), the read-out cache, one folder per
pooling and seed (config.yaml, model_final.pth, history.json), results.json and summary.md.
"""
import argparse
import json
import logging
import os
import time
from typing import Dict, List, Optional

import torch
from detectron2.data import MetadataCatalog
from detectron2.modeling import build_model
from detectron2.utils.logger import setup_logger

from ..checkpoint import MQFormerCheckpointer
from ..data import UnifiedDatasetMapper, build_unified_train_loader, load_tagged_dataset_dicts
from ..engine import build_config
from ..engine.run_dirs import claim_dir, claim_timestamped_dir
from ..exemplars.cache import load_or_build_region_cache, read_region_cache
from ..exemplars.evaluation import embed_exemplar_sets, evaluate_prompts, mask_ap
from ..exemplars.sampling import dataset_objects, draw_exemplar_sets, read_exemplar_sets, write_exemplar_sets
from ..exemplars.training import StageSettings, train_exemplar_stage
from .exemplar_table import exemplar_table
from .runs import newest_run

logger = logging.getLogger("exemplar_experiment")
TRAIN_DATASET = "mqformer_shapes_train_instance"
# Evaluated dataset -> the split its exemplars are drawn from.
VALIDATION = "mqformer_shapes_val_instance"
EVALUATIONS = {VALIDATION: TRAIN_DATASET,
               "mqformer_shapes_seginw_ColorShapes_val": "mqformer_shapes_seginw_ColorShapes_train"}


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default=None, help="main-job run (config.yaml + model_final.pth); "
                        "default: the newest output/shapes/run_* that has model_final.pth")
    parser.add_argument("--output-dir", default=None, help="default: a new output/exemplars/run_<time>")
    parser.add_argument("--poolings", default="mean,max,attention,gated_attention")
    parser.add_argument("--seeds", default="42,43", help="seeds of the exemplar stage")
    parser.add_argument("--iterations", type=int, default=500, help="exemplar-stage iterations per run")
    parser.add_argument("--exemplar-share", type=float, default=0.5,
                        help="probability that a class text of a training batch is replaced by exemplars")
    parser.add_argument("--k-values", default="1,3,5", help="exemplars per prompt evaluated")
    parser.add_argument("--align-weight", type=float, default=1.0,
                        help="weight of the exemplar stage's text-alignment loss (0 = the main losses only)")
    parser.add_argument("--episodes", type=int, default=2, help="exemplar sets per class (AP is their mean)")
    parser.add_argument("--sets-seed", type=int, default=0, help="seed drawing the evaluation exemplar sets")
    parser.add_argument("--exemplar-sets", default=None, help="reuse this exemplar_sets.json")
    parser.add_argument("--region-cache", default=None,
                        help="reuse this region_cache.pt of an earlier run on the same --run-dir (checked)")
    args = parser.parse_args(argv)
    args.k_values = [int(k) for k in args.k_values.split(",")]
    if min(args.k_values) < 1:
        parser.error(f"--k-values: K must be >= 1, got {args.k_values}")
    return args


def exemplar_config(run_dir: str, pooling: str, seed: int, output_dir: str):
    """The run's config with the exemplar encoder (`pooling`), its weights, the exemplar stage's
    training data (the instance split) and seed."""
    for name in ("config.yaml", "model_final.pth"):
        if not os.path.isfile(os.path.join(run_dir, name)):
            raise FileNotFoundError(f"--run-dir {run_dir} has no {name}")
    opts = ["MODEL.MQFORMER.EXEMPLARS.ENABLED", True, "MODEL.MQFORMER.EXEMPLARS.POOLING", pooling,
            "MODEL.WEIGHTS", os.path.join(run_dir, "model_final.pth"), "SEED", seed, "OUTPUT_DIR", output_dir,
            "DATASETS.TRAIN", (TRAIN_DATASET,), "DATASETS.TRAIN_SAMPLING_RATIOS", []]
    return build_config(os.path.join(run_dir, "config.yaml"), opts, cpu=not torch.cuda.is_available())


def load_model(cfg):
    """The config's model with MODEL.WEIGHTS loaded (the exemplar encoder keeps its seeded init)."""
    torch.manual_seed(cfg.SEED)
    model = build_model(cfg)
    MQFormerCheckpointer(model).load(cfg.MODEL.WEIGHTS, checkpointables=[])
    return model.eval()


def exemplar_sets(args, output_dir: str) -> Dict[str, Dict]:
    """The evaluation exemplar sets: --exemplar-sets, else drawn now into output_dir/exemplar_sets.json."""
    if args.exemplar_sets:
        return read_exemplar_sets(args.exemplar_sets)
    evaluations = {}
    for dataset, source in EVALUATIONS.items():
        classes = list(MetadataCatalog.get(dataset).text_prompts)
        dicts, _ = load_tagged_dataset_dicts([source])
        objects = dataset_objects(dicts, list(MetadataCatalog.get(source).text_prompts))
        evaluations[dataset] = {"source": source, "sets": draw_exemplar_sets(
            objects, classes, max(args.k_values), args.episodes, args.sets_seed)}
    path = os.path.join(output_dir, "exemplar_sets.json")
    write_exemplar_sets(path, evaluations, args.sets_seed)
    return read_exemplar_sets(path)


def evaluate_exemplars(model, cfg, sets: Dict[str, Dict], k_values: List[int]) -> Dict[str, Dict[str, float]]:
    """{dataset: {"K=k": mean mask AP over the episodes}} of exemplar prompts (instance-only): every
    K on the validation instances, the largest K on the held-out combinations."""
    results = {}
    for dataset, entry in sets.items():
        episodes = len(next(iter(entry["sets"].values())))
        results[dataset] = {}
        for k in k_values if dataset == VALIDATION else [max(k_values)]:
            aps = [mask_ap(evaluate_prompts(model, cfg, dataset, embed_exemplar_sets(model, cfg, entry["sets"], k, e)))
                   for e in range(episodes)]
            results[dataset][f"K={k}"] = sum(aps) / len(aps)
            results[dataset][f"K={k} episodes"] = aps
            logger.info("%s, K = %d: mask AP %.1f (episodes %s)", dataset, k, results[dataset][f"K={k}"],
                        ", ".join(f"{a:.1f}" for a in aps))
    return results


def run_stage(run_dir: str, pooling: str, seed: int, folder: str, cache: Dict, sets: Dict, args) -> Dict:
    """Train one exemplar stage into `folder`, evaluate it; its results."""
    cfg = exemplar_config(run_dir, pooling, seed, folder)
    model = load_model(cfg)
    loader = build_unified_train_loader(cfg, UnifiedDatasetMapper(cfg, True))
    settings = StageSettings(iterations=args.iterations, exemplar_share=args.exemplar_share, seed=seed,
                             align_weight=args.align_weight)
    start = time.perf_counter()
    history = train_exemplar_stage(model, loader, cache, settings)
    train_seconds = time.perf_counter() - start
    torch.save({"model": model.state_dict()}, os.path.join(folder, "model_final.pth"))
    with open(os.path.join(folder, "config.yaml"), "w") as f:
        f.write(cfg.dump())
    with open(os.path.join(folder, "history.json"), "w") as f:
        json.dump(history, f)
    results = evaluate_exemplars(model, cfg, sets, args.k_values)
    return {"pooling": pooling, "seed": seed, "train_seconds": train_seconds, "exemplar_ap": results}


def main(argv: Optional[List[str]], *, root: str) -> int:
    args = parse_args(argv)
    run_dir = args.run_dir or newest_run(os.path.join(root, "output", "shapes"))
    output_dir = claim_dir(args.output_dir) if args.output_dir else claim_timestamped_dir(
        os.path.join(root, "output", "exemplars"), "run_")
    setup_logger(output_dir, name="exemplar_experiment")
    setup_logger(output_dir, name="mqformer_d2.exemplars")
    logger.info("base model: %s; output: %s", run_dir, output_dir)
    poolings, seeds = args.poolings.split(","), [int(s) for s in args.seeds.split(",")]
    sets = exemplar_sets(args, output_dir)
    base_cfg = exemplar_config(run_dir, poolings[0], seeds[0], output_dir)
    base = load_model(base_cfg)
    text_ap = {dataset: mask_ap(evaluate_prompts(base, base_cfg, dataset, None)) for dataset in sets}
    logger.info("text-prompted mask AP: %s", text_ap)
    dicts, _ = load_tagged_dataset_dicts([TRAIN_DATASET])
    classes = list(MetadataCatalog.get(TRAIN_DATASET).text_prompts)
    objects = dataset_objects(dicts, classes)
    if args.region_cache:
        cache = read_region_cache(args.region_cache, base_cfg.MODEL.WEIGHTS, objects, classes)
    else:
        cache = load_or_build_region_cache(os.path.join(output_dir, "region_cache.pt"), base, base_cfg, objects, classes)
    runs = []
    for seed in seeds:
        for pooling in poolings:
            folder = claim_dir(os.path.join(output_dir, f"{pooling}_seed{seed}"))
            runs.append(run_stage(run_dir, pooling, seed, folder, cache, sets, args))
            _write(output_dir, run_dir, text_ap, runs)
    table = exemplar_table(text_ap, runs, args.k_values)
    logger.info("exemplar-prompted mask AP (base model %s):\n%s", run_dir, table)
    with open(os.path.join(output_dir, "summary.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    return 0


def _write(output_dir: str, run_dir: str, text_ap: Dict, runs: List[Dict]) -> None:
    with open(os.path.join(output_dir, "results.json"), "w") as f:
        json.dump({"base_run": run_dir, "text_ap": text_ap, "runs": runs}, f, indent=2)
