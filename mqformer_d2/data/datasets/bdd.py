"""BDD100K semantic segmentation (10K images, Cityscapes' 19 classes), unified format.

Layout: the official release under ``$DETECTRON2_DATASETS/bdd100k``:
``images/10k/{train,val}/*.jpg`` and ``labels/sem_seg/masks/{train,val}/*.png`` (train ids 0..18,
255 ignore). Registered: ``bdd10k_sem_seg_{train,val}``.
"""
import os
from typing import List

from .common import clean_class_names, register_dataset
from .semantic import load_semantic_unified

# Cityscapes train-id order, which BDD100K's semantic masks use.
BDD_SEM_SEG_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # fmt: skip


def bdd_paths(root: str, split: str) -> dict:
    """Image and mask folders of a BDD100K-10K split under ``root``."""
    base = os.path.join(root, "bdd100k")
    return {
        "image_root": os.path.join(base, "images", "10k", split),
        "sem_seg_root": os.path.join(base, "labels", "sem_seg", "masks", split),
    }


def load_bdd_semantic(root: str, split: str) -> List[dict]:
    """BDD100K semantic ``split`` under ``root``: one target per class present."""
    paths = bdd_paths(root, split)
    return load_semantic_unified(paths["sem_seg_root"], paths["image_root"], ignore_label=255)


def register_bdd(root: str) -> None:
    """Register ``bdd10k_sem_seg_{train,val}`` rooted at ``root``."""
    for split in ("train", "val"):
        register_dataset(
            f"bdd10k_sem_seg_{split}",
            lambda s=split: load_bdd_semantic(root, s),
            task="semantic",
            evaluator_type="sem_seg",
            text_prompts=clean_class_names(BDD_SEM_SEG_CLASSES),
            stuff_classes=list(BDD_SEM_SEG_CLASSES),
            ignore_label=255,
            **bdd_paths(root, split),
        )
