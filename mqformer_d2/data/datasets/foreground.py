"""Foreground (salient-object) segmentation: image folder + binary-mask folder pairs.

An image ``X.jpg`` pairs with ``X.png`` (white = foreground; values >= 128 count as foreground).
Each record gets one target, the foreground mask with its box, category 0 whose text prompt is
``"foreground"``; records keep the mask as ``sem_seg_file_name`` for the evaluator. Layouts under
``$DETECTRON2_DATASETS`` (those of the official releases):

- DUTS: ``DUTS/DUTS-TR/DUTS-TR-{Image,Mask}``, ``DUTS/DUTS-TE/DUTS-TE-{Image,Mask}``
- HRSOD: ``HRSOD/HRSOD_{train,test}``, ``HRSOD/HRSOD_{train,test}_mask``
- UHRSD: ``UHRSD/UHRSD_{TR,TE}_2K/{image,mask}``

Registered: ``duts_{train,test}``, ``hrsod_{train,test}``, ``uhrsd_{train,test}``; any other pair
of folders with :func:`register_foreground_pairs`.
"""
import os
from typing import List

import numpy as np
from detectron2.data.datasets.coco import load_sem_seg
from PIL import Image

from .common import map_with_progress, mask_annotation, register_dataset, require_dir

FOREGROUND_PROMPT = "foreground"
# name -> (image folder, mask folder), relative to the datasets root
FOREGROUND_SETS = {
    "duts_train": ("DUTS/DUTS-TR/DUTS-TR-Image", "DUTS/DUTS-TR/DUTS-TR-Mask"),
    "duts_test": ("DUTS/DUTS-TE/DUTS-TE-Image", "DUTS/DUTS-TE/DUTS-TE-Mask"),
    "hrsod_train": ("HRSOD/HRSOD_train", "HRSOD/HRSOD_train_mask"),
    "hrsod_test": ("HRSOD/HRSOD_test", "HRSOD/HRSOD_test_mask"),
    "uhrsd_train": ("UHRSD/UHRSD_TR_2K/image", "UHRSD/UHRSD_TR_2K/mask"),
    "uhrsd_test": ("UHRSD/UHRSD_TE_2K/image", "UHRSD/UHRSD_TE_2K/mask"),
}


def foreground_annotations(record: dict) -> dict:
    """Add the foreground target, ``height`` and ``width`` to a record with a mask file."""
    mask = np.asarray(Image.open(record["sem_seg_file_name"]).convert("L")) >= 128
    record = dict(record)
    record["height"], record["width"] = mask.shape
    record["annotations"] = [mask_annotation(mask, 0)] if mask.any() else []
    return record


def load_foreground_pairs(
    image_dir: str, mask_dir: str, image_ext: str = "jpg", mask_ext: str = "png"
) -> List[dict]:
    """Unified records of an (images, binary masks) folder pair, paired by file stem."""
    require_dir(image_dir)
    require_dir(mask_dir)
    records = load_sem_seg(mask_dir, image_dir, gt_ext=mask_ext, image_ext=image_ext)
    return map_with_progress(foreground_annotations, records, desc=f"{mask_dir} -> unified")


def register_foreground_pairs(name: str, image_dir: str, mask_dir: str) -> None:
    """Register a foreground dataset ``name`` from an image folder and a mask folder."""
    register_dataset(
        name,
        lambda: load_foreground_pairs(image_dir, mask_dir),
        task="foreground",
        evaluator_type="foreground",
        text_prompts=[FOREGROUND_PROMPT],
        image_root=image_dir,
        sem_seg_root=mask_dir,
    )


def register_foreground(root: str) -> None:
    """Register DUTS, HRSOD and UHRSD (train/test) rooted at ``root``."""
    for name, (image_dir, mask_dir) in FOREGROUND_SETS.items():
        register_foreground_pairs(name, os.path.join(root, image_dir), os.path.join(root, mask_dir))
