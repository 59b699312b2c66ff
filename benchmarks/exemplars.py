"""Benchmark the prediction-time cost of exemplar prompts: one `MQFormerPredictor` call with text
prompts only, then with exemplar prompts of K boxes on K other images, and a large prompt set to
show that memory stays bounded (exemplar images go through the backbone IMAGES_PER_CHUNK at a time).

    .venv/bin/python benchmarks/exemplars.py [--config-file configs/shapes/mqformer_tiny_shapes.yaml]
        [--size 128] [--ks 1 5 20 200] [--repeats 5] [KEY VALUE ...]

Random weights (timing does not depend on them), MODEL.MQFORMER.EXEMPLARS.ENABLED, a random uint8
BGR image of --size x --size pixels segmented for 6 text prompts, or for 6 text prompts + one
exemplar prompt with K boxes on K distinct random images of the same size. Each line: the median
seconds of --repeats calls after one warm-up, and the process's peak RSS during those calls
(Linux: reset before each configuration through /proc/self/clear_refs).
"""
import argparse
import logging
import resource
import statistics
import time

import numpy as np
import torch

from mqformer_d2 import MQFormerPredictor
from mqformer_d2.engine import get_mqformer_cfg

logger = logging.getLogger("benchmarks.exemplars")
TEXT_PROMPTS = ["circle", "square", "triangle", "star", "hexagon", "cross"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="configs/shapes/mqformer_tiny_shapes.yaml")
    parser.add_argument("--size", type=int, default=128, help="side of the square images")
    parser.add_argument("--ks", nargs="+", type=int, default=[1, 5, 20, 200], help="exemplars of the prompt")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return parser.parse_args(argv)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        logger.warning("cannot reset the peak RSS (not Linux?): peaks are cumulative")


def measure(call, repeats: int):
    """(median seconds, peak RSS MiB) of `repeats` calls after a warm-up."""
    call()
    reset_peak_rss()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), peak_rss_mib()


def main(argv=None):
    logging.basicConfig(level=logging.INFO)
    args = parse_args(argv)
    cfg = get_mqformer_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(["MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu", "MODEL.MQFORMER.EXEMPLARS.ENABLED", True,
                         *args.opts])
    cfg.freeze()
    torch.manual_seed(0)
    predictor = MQFormerPredictor(cfg)
    rng = np.random.RandomState(0)
    image = rng.randint(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    box = (args.size * 0.25, args.size * 0.25, args.size * 0.75, args.size * 0.75)
    rows = [("text only", *measure(lambda: predictor(image, prompts=TEXT_PROMPTS, task="instance"), args.repeats))]
    for k in args.ks:
        exemplars = {"part": [(rng.randint(0, 256, image.shape, dtype=np.uint8), box) for _ in range(k)]}
        call = lambda: predictor(image, prompts=TEXT_PROMPTS, exemplars=exemplars, task="instance")  # noqa: E731
        rows.append((f"+ 1 exemplar prompt, K = {k}", *measure(call, args.repeats)))
    print("| prompts | seconds per call (median) | peak RSS (MiB) |\n|---|---|---|")
    for name, seconds, peak in rows:
        print(f"| {name} | {seconds:.3f} | {peak:,.0f} |")


if __name__ == "__main__":
    main()
