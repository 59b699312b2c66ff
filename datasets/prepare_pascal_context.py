#!/usr/bin/env python3
"""Make Pascal Context 59 / 459 semantic labels in detectron2's layout.

Reads  VOCdevkit/VOC2010/trainval/*.mat  (the release's trainval.tar.gz: ``LabelMap``, 459 labels,
       1-based, 0 = unlabeled)
       VOCdevkit/VOC2010/ImageSets/SegmentationContext/{train,val}.txt  (image ids of each split)
Writes VOCdevkit/VOC2010/annotations_detectron2/pc59_{train,val}/*.png   (0..58, 255 ignore)
       VOCdevkit/VOC2010/annotations_detectron2/pc459_{train,val}/*.tif  (uint16 0..458, 65535 ignore)
under $DETECTRON2_DATASETS. Needs scipy. Existing outputs are kept unless --overwrite.
"""
import argparse
import logging
import os

import numpy as np
from PIL import Image
from scipy.io import loadmat
from tqdm import tqdm

from mqformer_d2.data.datasets.pascal_context_names import PASCAL_CONTEXT_459, pascal_context_59_label_ids

logger = logging.getLogger("prepare_pascal_context")


def label_tables():
    """Lookup tables from 1-based 459 labels (0 = unlabeled) to the pc59 and pc459 label maps."""
    to_459 = np.arange(-1, len(PASCAL_CONTEXT_459), dtype=np.int64)
    to_459[0] = 65535
    to_59 = np.full(len(PASCAL_CONTEXT_459) + 1, 255, np.int64)
    for index, label in enumerate(pascal_context_59_label_ids()):
        to_59[label] = index
    return to_59.astype(np.uint8), to_459.astype(np.uint16)


def convert_split(base: str, split: str, overwrite: bool) -> None:
    """Write the pc59 PNGs and pc459 TIFFs of the images listed for ``split``."""
    list_file = os.path.join(base, "ImageSets", "SegmentationContext", f"{split}.txt")
    if not os.path.isfile(list_file):
        raise FileNotFoundError(f"Pascal Context split list not found: {list_file}")
    with open(list_file) as f:
        image_ids = [line.strip() for line in f if line.strip()]
    to_59, to_459 = label_tables()
    out_59 = os.path.join(base, "annotations_detectron2", f"pc59_{split}")
    out_459 = os.path.join(base, "annotations_detectron2", f"pc459_{split}")
    os.makedirs(out_59, exist_ok=True)
    os.makedirs(out_459, exist_ok=True)
    for image_id in tqdm(image_ids, desc=split):
        dst_59 = os.path.join(out_59, image_id + ".png")
        dst_459 = os.path.join(out_459, image_id + ".tif")
        if os.path.exists(dst_59) and os.path.exists(dst_459) and not overwrite:
            continue
        labels = loadmat(os.path.join(base, "trainval", image_id + ".mat"))["LabelMap"]
        Image.fromarray(to_59[labels]).save(dst_59)
        Image.fromarray(to_459[labels]).save(dst_459)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=os.getenv("DETECTRON2_DATASETS", "datasets"))
    parser.add_argument("--overwrite", action="store_true", help="rewrite existing outputs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    base = os.path.join(os.path.expanduser(args.root), "VOCdevkit", "VOC2010")
    for split in ("train", "val"):
        convert_split(base, split, args.overwrite)
        logger.info("%s done", split)


if __name__ == "__main__":
    main()
