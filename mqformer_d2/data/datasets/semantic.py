"""Semantic-segmentation label folders -> unified records (ADE20K-150, Pascal Context, BDD).

Files are paired by detectron2's ``load_sem_seg``; each class present in a label map becomes one
target (mask of that class, ``has_box=False`` since a class region merges instances). The record
keeps ``sem_seg_file_name`` for detectron2's ``SemSegEvaluator``.
"""
from typing import List

import numpy as np
from detectron2.data.datasets.coco import load_sem_seg
from PIL import Image

from .common import label_map_annotations, map_with_progress, require_dir


def read_label_map(path: str) -> np.ndarray:
    """A semantic label PNG/TIFF as an integer array (uint16 TIFFs keep their values)."""
    return np.asarray(Image.open(path)).astype(np.int64)


def semantic_annotations(record: dict, ignore_label: int) -> dict:
    """Add ``annotations``, ``height``, ``width`` to a record holding ``sem_seg_file_name``."""
    label_map = read_label_map(record["sem_seg_file_name"])
    record = dict(record)
    record["height"], record["width"] = label_map.shape[:2]
    record["annotations"] = label_map_annotations(label_map, ignore_label)
    return record


def load_semantic_unified(
    gt_root: str,
    image_root: str,
    ignore_label: int,
    gt_ext: str = "png",
    image_ext: str = "jpg",
) -> List[dict]:
    """Unified records of a (label folder, image folder) pair; see the module docstring."""
    require_dir(gt_root)
    require_dir(image_root)
    records = load_sem_seg(gt_root, image_root, gt_ext=gt_ext, image_ext=image_ext)
    return map_with_progress(
        lambda r: semantic_annotations(r, ignore_label), records, desc=f"{gt_root} -> unified"
    )
