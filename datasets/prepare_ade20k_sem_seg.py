#!/usr/bin/env python3
"""Make ADE20K-150's detectron2 semantic labels.

Reads  $DETECTRON2_DATASETS/ADEChallengeData2016/annotations/{training,validation}/*.png
       (SceneParsing labels: 0 = "other", 1..150 = classes)
Writes $DETECTRON2_DATASETS/ADEChallengeData2016/annotations_detectron2/{training,validation}/*.png
       (0..149 = classes, 255 = ignore)

Existing outputs are kept unless --overwrite is given.
"""
import argparse
import logging
import os

import numpy as np
from PIL import Image
from tqdm import tqdm

logger = logging.getLogger("prepare_ade20k_sem_seg")


def shift_labels(labels: np.ndarray) -> np.ndarray:
    """SceneParsing labels -> 0-based classes with "other" (0) as the 255 ignore label."""
    return np.where(labels == 0, 255, labels.astype(np.int32) - 1).astype(np.uint8)


def convert_split(base: str, folder: str, overwrite: bool) -> int:
    """Convert one split folder; return how many files were written."""
    src_dir = os.path.join(base, "annotations", folder)
    dst_dir = os.path.join(base, "annotations_detectron2", folder)
    if not os.path.isdir(src_dir):
        raise FileNotFoundError(f"ADE20K annotations not found: {src_dir}")
    os.makedirs(dst_dir, exist_ok=True)
    written = 0
    for name in tqdm(sorted(f for f in os.listdir(src_dir) if f.endswith(".png")), desc=folder):
        dst = os.path.join(dst_dir, name)
        if os.path.exists(dst) and not overwrite:
            continue
        labels = np.asarray(Image.open(os.path.join(src_dir, name)))
        Image.fromarray(shift_labels(labels)).save(dst)
        written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=os.getenv("DETECTRON2_DATASETS", "datasets"))
    parser.add_argument("--overwrite", action="store_true", help="rewrite existing outputs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    base = os.path.join(os.path.expanduser(args.root), "ADEChallengeData2016")
    for folder in ("training", "validation"):
        logger.info("%s: wrote %d label maps", folder, convert_split(base, folder, args.overwrite))


if __name__ == "__main__":
    main()
