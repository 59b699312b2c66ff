"""Pascal Context 59 and 459 semantic segmentation (open-set evaluation), unified format.

Layout under ``$DETECTRON2_DATASETS/VOCdevkit/VOC2010`` (the one detectron2-based open-vocabulary
projects use; made by ``datasets/prepare_pascal_context.py`` from the release's ``trainval/*.mat``):
``JPEGImages/*.jpg``, ``annotations_detectron2/pc59_{train,val}/*.png`` (uint8, 0..58, 255 ignore)
and ``annotations_detectron2/pc459_{train,val}/*.tif`` (uint16, 0..458, 65535 ignore).

Registered: ``pascal_context_59_sem_seg_{train,val}``, ``pascal_context_459_sem_seg_{train,val}``.
"""
import os
from typing import List

from .common import clean_class_names, register_dataset
from .pascal_context_names import PASCAL_CONTEXT_59, PASCAL_CONTEXT_459
from .semantic import load_semantic_unified

VOC_DIR = os.path.join("VOCdevkit", "VOC2010")
# variant -> (class names, label folder prefix, label extension, ignore label)
VARIANTS = {
    59: (PASCAL_CONTEXT_59, "pc59", "png", 255),
    459: (PASCAL_CONTEXT_459, "pc459", "tif", 65535),
}


def pascal_context_paths(root: str, variant: int, split: str) -> dict:
    """Image folder and label folder of one Pascal Context variant/split under ``root``."""
    base = os.path.join(root, VOC_DIR)
    prefix = VARIANTS[variant][1]
    return {
        "image_root": os.path.join(base, "JPEGImages"),
        "sem_seg_root": os.path.join(base, "annotations_detectron2", f"{prefix}_{split}"),
    }


def load_pascal_context(root: str, variant: int, split: str) -> List[dict]:
    """Pascal Context ``variant`` (59 or 459) ``split`` under ``root``: a target per class present."""
    _, _, ext, ignore = VARIANTS[variant]
    paths = pascal_context_paths(root, variant, split)
    return load_semantic_unified(paths["sem_seg_root"], paths["image_root"], ignore, gt_ext=ext)


def register_pascal_context(root: str) -> None:
    """Register ``pascal_context_{59,459}_sem_seg_{train,val}`` rooted at ``root``."""
    for variant, (names, _, _, ignore) in VARIANTS.items():
        for split in ("train", "val"):
            register_dataset(
                f"pascal_context_{variant}_sem_seg_{split}",
                lambda v=variant, s=split: load_pascal_context(root, v, s),
                task="semantic",
                evaluator_type="sem_seg",
                text_prompts=clean_class_names(names),
                stuff_classes=list(names),
                ignore_label=ignore,
                **pascal_context_paths(root, variant, split),
            )
