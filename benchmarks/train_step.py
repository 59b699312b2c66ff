"""Benchmark one training iteration of a config: seconds per step, peak memory, and (optionally)
where the time goes, on batches of the built-in synthetic benchmark.

    .venv/bin/python benchmarks/train_step.py --config-file configs/mqformer_tiny_cpu.yaml \
        [--steps 10] [--profile] [KEY VALUE ...]

Data loading is excluded: a few batches are mapped up front and cycled. The model trains (AdamW)
so the timings include the optimizer step. CPU peak memory is the process's peak RSS.
"""
import argparse
import itertools
import logging
import resource
import statistics
import time

import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model

from mqformer_d2 import add_mqformer_config
from mqformer_d2.data import UnifiedDatasetMapper

logger = logging.getLogger("benchmarks.train_step")


def fixed_batches(cfg, dataset, num_batches):
    """`num_batches` mapped training batches of the dataset (tagged with its name)."""
    mapper = UnifiedDatasetMapper(cfg, is_train=True)
    records = DatasetCatalog.get(dataset)
    batch_size = cfg.SOLVER.IMS_PER_BATCH
    items = [mapper(dict(r, dataset_name=dataset)) for r in records[: num_batches * batch_size]]
    return [items[i: i + batch_size] for i in range(0, len(items), batch_size)]


def train_step(model, optimizer, batch):
    losses = model(batch)
    total = sum(losses.values())
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return total.item()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="configs/mqformer_tiny_cpu.yaml")
    parser.add_argument("--dataset", default="mqformer_shapes_train")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="log the 15 most expensive ops")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = add_mqformer_config(get_cfg())
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    torch.manual_seed(0)
    model = build_model(cfg)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batches = itertools.cycle(fixed_batches(cfg, args.dataset, num_batches=4))
    train_step(model, optimizer, next(batches))  # warm-up
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        train_step(model, optimizer, next(batches))
        times.append(time.perf_counter() - start)
    logger.info("%s | batch %d | %.3f s/step (median of %d; min %.3f, max %.3f) | peak RSS %.0f MiB | %d threads",
                args.config_file, cfg.SOLVER.IMS_PER_BATCH, statistics.median(times), len(times),
                min(times), max(times), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                torch.get_num_threads())
    if args.profile:
        with torch.profiler.profile() as profiler:
            for _ in range(3):
                train_step(model, optimizer, next(batches))
        logger.info("%s", profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
