#!/usr/bin/env python3
"""Make ADE20K-150 panoptic annotations (COCO panoptic format) from the SceneParsing semantic
labels and the ADE20K instance-challenge masks.

Reads  ADEChallengeData2016/annotations/{training,validation}/*.png          (semantic, 1-based)
       ADEChallengeData2016/annotations_instance/{training,validation}/*.png (R: instance class
       1..100, G: instance index, 0 = none)
Writes ADEChallengeData2016/ade20k_panoptic_{train,val}/*.png (segment ids as panopticapi RGB)
       ADEChallengeData2016/ade20k_panoptic_{train,val}.json
under $DETECTRON2_DATASETS. Stuff regions come from the semantic map (one segment per stuff class);
thing instances are painted over them. Category ids are 0-based SceneParsing ids (0..149); the 100
thing classes are those of the instance challenge. Existing outputs are kept unless --overwrite.
"""
import argparse
import json
import logging
import os

import numpy as np
from panopticapi.utils import id2rgb
from PIL import Image
from tqdm import tqdm

from mqformer_d2.data.datasets.ade20k import ADE20K_THING_IDS, ADE20K_THING_IDS_1BASED
from detectron2.data.datasets.builtin_meta import ADE20K_SEM_SEG_CATEGORIES

logger = logging.getLogger("prepare_ade20k_panoptic")
SPLITS = {"train": "training", "val": "validation"}


def segment_info(segment_id: int, category_id: int, mask: np.ndarray) -> dict:
    """COCO-panoptic segment entry of a binary mask."""
    ys, xs = np.nonzero(mask)
    bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
    return {"id": segment_id, "category_id": category_id, "area": int(mask.sum()),
            "bbox": bbox, "iscrowd": 0}


def panoptic_from_labels(semantic: np.ndarray, instance: np.ndarray):
    """(segment-id map, segments_info) of one image from its semantic and instance PNG arrays."""
    segments = np.zeros(semantic.shape, np.int64)
    infos = []
    for label in np.unique(semantic):
        category = int(label) - 1
        if label == 0 or category in ADE20K_THING_IDS:
            continue
        mask = semantic == label
        segments[mask] = len(infos) + 1
        infos.append(segment_info(len(infos) + 1, category, mask))
    instance_class, instance_index = instance[..., 0], instance[..., 1]
    for index in np.unique(instance_index):
        mask = (instance_index == index) & (instance_class > 0)
        if index == 0 or not mask.any():
            continue
        category = ADE20K_THING_IDS_1BASED[int(np.bincount(instance_class[mask]).argmax()) - 1] - 1
        segments[mask] = len(infos) + 1
        infos.append(segment_info(len(infos) + 1, category, mask))
    # a stuff segment fully covered by things keeps an entry with no pixels: drop those
    present = set(np.unique(segments).tolist())
    infos = [s for s in infos if s["id"] in present]
    for s in infos:
        s["area"] = int((segments == s["id"]).sum())
    return segments, infos


def categories() -> list:
    return [{"id": i, "name": name, "isthing": int(i in ADE20K_THING_IDS)}
            for i, name in enumerate(ADE20K_SEM_SEG_CATEGORIES)]


def convert_split(base: str, split: str, overwrite: bool) -> None:
    """Write the panoptic PNG folder and json of one split."""
    folder = SPLITS[split]
    sem_dir = os.path.join(base, "annotations", folder)
    ins_dir = os.path.join(base, "annotations_instance", folder)
    out_dir = os.path.join(base, f"ade20k_panoptic_{split}")
    out_json = os.path.join(base, f"ade20k_panoptic_{split}.json")
    for path in (sem_dir, ins_dir):
        if not os.path.isdir(path):
            raise FileNotFoundError(f"ADE20K input folder not found: {path}")
    if os.path.exists(out_json) and not overwrite:
        logger.info("%s exists, skipping (use --overwrite)", out_json)
        return
    os.makedirs(out_dir, exist_ok=True)
    images, annotations = [], []
    for name in tqdm(sorted(f for f in os.listdir(sem_dir) if f.endswith(".png")), desc=split):
        stem = os.path.splitext(name)[0]
        semantic = np.asarray(Image.open(os.path.join(sem_dir, name)))
        instance = np.asarray(Image.open(os.path.join(ins_dir, name)).convert("RGB"))
        segments, infos = panoptic_from_labels(semantic, instance)
        Image.fromarray(id2rgb(segments)).save(os.path.join(out_dir, name))
        height, width = semantic.shape
        images.append({"id": stem, "file_name": stem + ".jpg", "height": height, "width": width})
        annotations.append({"image_id": stem, "file_name": name, "segments_info": infos})
    with open(out_json, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories()}, f)
    logger.info("wrote %s (%d images)", out_json, len(images))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=os.getenv("DETECTRON2_DATASETS", "datasets"))
    parser.add_argument("--overwrite", action="store_true", help="rewrite existing outputs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    base = os.path.join(os.path.expanduser(args.root), "ADEChallengeData2016")
    for split in SPLITS:
        convert_split(base, split, args.overwrite)


if __name__ == "__main__":
    main()
