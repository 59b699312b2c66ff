"""Benchmark prediction on one image: time per stage and peak memory, per task and image size.

    .venv/bin/python benchmarks/predictor.py [--config-file configs/mqformer_R50.yaml] \
        [--sizes 800x1216 4000x6000] [--tasks instance semantic panoptic referring] [--repeats 3] \
        [--vocabulary coco|lvis] [--semantic-output auto|scores|labels] [--device cpu] \
        [--output results.json] [KEY VALUE ...]

`MQFormerPredictor` with random weights (no MODEL.WEIGHTS), the 133 COCO panoptic class names as
the vocabulary (`--vocabulary lvis`: the 1,203 LVIS v1 names; 10 "the <name>" sentences for
referring), TEST.DETECTIONS_PER_IMAGE 100, on a random uint8 BGR image of each HxW size (the
model sees it resized by INPUT.MIN/MAX_SIZE_TEST; the outputs are at the full size). The semantic
output is the predictor's default (`auto`: the (T, H, W) score map up to
MODEL.MQFORMER.TEST.SEMANTIC_MAX_SCORES_MB, per-pixel labels and scores above), or the form
asked. Stages, timed with forward hooks: text encoder, backbone, pixel
decoder, decoder, post-processing (`model.postprocess`: selection and upsampling to the full
size). Peak memory per (size, task): on CPU the process's peak RSS during the call (Linux: the
peak is reset before each call through /proc/self/clear_refs), on CUDA torch's peak allocation.
Each line is the median of --repeats calls after one warm-up call.

Note: `--semantic-output scores` makes the (T, H, W) float32 map whatever its size: 12.7 GB for
133 names at 4000x6000 (the API's output, not a temporary).
"""
import argparse
import json
import logging
import resource
import statistics
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Dict, List

import numpy as np
import torch
from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES
from detectron2.data.datasets.lvis_v1_categories import LVIS_CATEGORIES

from mqformer_d2 import MQFormerPredictor
from mqformer_d2.data.datasets import clean_class_names
from mqformer_d2.engine import get_mqformer_cfg

logger = logging.getLogger("benchmarks.predictor")
TASKS = ("instance", "semantic", "panoptic", "referring")
STAGES = ("text_encoder", "backbone", "pixel_decoder", "decoder")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="configs/mqformer_R50.yaml")
    parser.add_argument("--sizes", nargs="+", default=["800x1216", "4000x6000"], help="HxW of the input images")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vocabulary", default="coco", choices=("coco", "lvis"),
                        help="class names: COCO panoptic's 133 or LVIS v1's 1,203")
    parser.add_argument("--semantic-output", default="auto", choices=("auto", "scores", "labels"),
                        help="semantic output form (auto: the predictor's default for the size)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", default="", help="also write the results as json here")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return parser.parse_args(argv)


def build_predictor(args) -> MQFormerPredictor:
    cfg = get_mqformer_cfg()
    cfg.merge_from_file(args.config_file)
    # Inference only: the R50 config trains in mixed precision (SOLVER.AMP, CUDA-only), which the
    # predictor does not use; switched off so that the config builds on CPU too.
    cfg.merge_from_list(["SOLVER.AMP.ENABLED", False, "MODEL.DEVICE", args.device, "MODEL.WEIGHTS", "",
                         "TEST.DETECTIONS_PER_IMAGE", 100, *args.opts])
    cfg.freeze()
    torch.manual_seed(0)
    return MQFormerPredictor(cfg)


class StageTimer:
    """Seconds spent in the model's stages during one call, from forward pre-hooks and hooks."""

    def __init__(self, model):
        self.seconds: Dict[str, float] = defaultdict(float)
        self._started: Dict[str, float] = {}
        modules = {"text_encoder": model.text_encoder, "backbone": model.backbone,
                   "pixel_decoder": model.pixel_decoder, "decoder": model.decoder}
        for stage, module in modules.items():
            module.register_forward_pre_hook(lambda *_, s=stage: self._start(s))
            module.register_forward_hook(lambda *_, s=stage: self._stop(s))
        postprocess = model.postprocess

        def timed_postprocess(*a, **k):
            self._start("postprocess")
            try:
                return postprocess(*a, **k)
            finally:
                self._stop("postprocess")

        model.postprocess = timed_postprocess

    def _synchronize(self):
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def _start(self, stage):
        self._synchronize()
        self._started[stage] = time.perf_counter()

    def _stop(self, stage):
        self._synchronize()
        self.seconds[stage] += time.perf_counter() - self._started.pop(stage)

    def reset(self):
        self.seconds.clear()


@contextmanager
def peak_memory(device: str, result: dict):
    """Sets result["peak_mib"]: the peak memory while the block runs (see the module docstring)."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        yield
        result["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM, the peak RSS
    except OSError:
        logger.warning("cannot reset the peak RSS: the peak reported is the process's since start")
    yield
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prompts_for(task: str, vocabulary: str = "coco") -> List[str]:
    categories = LVIS_CATEGORIES if vocabulary == "lvis" else COCO_CATEGORIES
    names = clean_class_names([c["name"] for c in categories])
    return [f"the {name}" for name in names[:10]] if task == "referring" else names


def run_case(predictor, timer, image: np.ndarray, task: str, args) -> dict:
    """Median seconds per stage and in total, and the peak memory, of `args.repeats` calls."""
    prompts = prompts_for(task, args.vocabulary)
    options = {} if args.semantic_output == "auto" else {"semantic_output": args.semantic_output}
    predictor(image, prompts=prompts, task=task, **options)  # warm-up
    per_call = defaultdict(list)
    result = {}
    for _ in range(args.repeats):
        timer.reset()
        with peak_memory(args.device, result):
            start = time.perf_counter()
            predictor(image, prompts=prompts, task=task, **options)
            per_call["total"].append(time.perf_counter() - start)
        for stage in (*STAGES, "postprocess"):
            per_call[stage].append(timer.seconds.get(stage, 0.0))
    result.update({stage: statistics.median(values) for stage, values in per_call.items()})
    return result


def table(rows: List[dict]) -> str:
    columns = ["size", "task", *STAGES, "postprocess", "total", "peak_mib"]
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for row in rows:
        cells = [row["size"], row["task"]] + [f"{row[c]:.3f}" for c in (*STAGES, "postprocess", "total")]
        lines.append("| " + " | ".join(cells + [f"{row['peak_mib']:.0f}"]) + " |")
    return "\n".join(lines)


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)
    predictor = build_predictor(args)
    timer = StageTimer(predictor.model)
    rows = []
    for size in args.sizes:
        height, width = (int(v) for v in size.lower().split("x"))
        image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        for task in args.tasks:
            row = {"size": size, "task": task, **run_case(predictor, timer, image, task, args)}
            logger.info("%s %s: %.3f s, peak %.0f MiB", size, task, row["total"], row["peak_mib"])
            rows.append(row)
    logger.info("%s | %s | %d threads | seconds (median of %d) and peak MiB:\n%s", args.config_file,
                args.device, torch.get_num_threads(), args.repeats, table(rows))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
