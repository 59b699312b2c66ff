"""Benchmark controllable matting on one image: the predictor's referring call (prompt -> mask),
then each way of turning the mask into an alpha (trimap band MODEL.MQFORMER.MATTING.TRIMAP_BAND):
the refinement, closed-form and KNN matting (pymatting); seconds per call.

    .venv/bin/python benchmarks/matting.py --run-dir output/shapes/run_<time> \
        --refiner output/matting/experiment_<time>/refiner_seed0/refiner_final.pth \
        [--sizes 128 512] [--repeats 5] [--output results.json]

The image is the first validation image of the matting split scaled to each size (its object's
prompt, "the <colour> <shape>"); the main-job model sees it resized to its test size, the
matting methods work at the full size (the refinement at most at MODEL.MQFORMER.MATTING.RESOLUTION
pixels). Each number is the median of --repeats calls after one warm-up call, on the CPU with the
threads torch uses by default.
"""
import argparse
import json
import logging
import os
import statistics
import sys
import time

import cv2
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
logger = logging.getLogger("benchmarks.matting")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, help="a main-job run (config.yaml, model_final.pth)")
    parser.add_argument("--refiner", required=True, help="refinement weights (tools/train_matting.py)")
    parser.add_argument("--sizes", nargs="+", type=int, default=[128, 512], help="image sides, pixels")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default="", help="also write the results as json here")
    return parser.parse_args(argv)


def median_seconds(function, repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_size(predictor, refiner, image_rgb, prompt, size, repeats):
    """Seconds of each step on the image scaled to ``size`` x ``size``."""
    from mqformer_d2.matting.inference import alpha_from_mask
    from mqformer_d2.matting.peers import closed_form_alpha, knn_alpha
    from mqformer_d2.matting.trimap import trimap_from_mask

    image = cv2.resize(image_rgb, (size, size), interpolation=cv2.INTER_LINEAR)
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    band = predictor.cfg.MODEL.MQFORMER.MATTING.TRIMAP_BAND * size // image_rgb.shape[0]
    mask = predictor(bgr, prompts=[prompt], task="referring")["referring"]["masks"][0].numpy()
    trimap = trimap_from_mask(mask, max(band, 1))
    return {
        "size": size, "unknown_pixels": int((trimap == 128).sum()),
        "predictor referring (prompt -> mask)": median_seconds(
            lambda: predictor(bgr, prompts=[prompt], task="referring"), repeats),
        "refinement (mask -> alpha)": median_seconds(
            lambda: alpha_from_mask(refiner, image, mask, max(band, 1),
                                    predictor.cfg.MODEL.MQFORMER.MATTING.RESOLUTION), repeats),
        "closed-form (trimap -> alpha)": median_seconds(lambda: closed_form_alpha(image, trimap), repeats),
        "KNN (trimap -> alpha)": median_seconds(lambda: knn_alpha(image, trimap), repeats),
    }


def main(argv=None):
    logging.basicConfig(level=logging.INFO)
    args = parse_args(argv)
    from demo_shapes import build_predictor

    from mqformer_d2.data.shapes.matting_split import MattingSplitConfig, load_matting_split
    from mqformer_d2.matting.files import read_rgb
    from mqformer_d2.matting.inference import load_refiner

    record = load_matting_split(os.getenv("DETECTRON2_DATASETS", "datasets"), MattingSplitConfig(), "val")[0]
    predictor = build_predictor(args.run_dir, cpu=True)
    refiner = load_refiner(args.refiner)
    image, prompt = read_rgb(record["file_name"]), record["annotations"][0]["texts"][0]
    rows = [time_size(predictor, refiner, image, prompt, size, args.repeats) for size in args.sizes]
    keys = [k for k in rows[0] if k not in ("size", "unknown_pixels")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; prompt {prompt!r}; "
          f"refinement prior {refiner.prior!r}")
    print("| size | unknown pixels | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for row in rows:
        print(f"| {row['size']}x{row['size']} | {row['unknown_pixels']:,} | "
              + " | ".join(f"{row[k]:.3f}" for k in keys) + " |")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
