"""ADE20K-150 (SceneParsing) semantic and panoptic segmentation, unified format.

Layout (Mask2Former's; see datasets/README.md), under ``$DETECTRON2_DATASETS/ADEChallengeData2016``:
``images/{training,validation}/*.jpg``, ``annotations_detectron2/{training,validation}/*.png``
(labels shifted so 0 "other" -> 255 ignore, made by ``datasets/prepare_ade20k_sem_seg.py``),
``ade20k_panoptic_{train,val}.json`` + ``ade20k_panoptic_{train,val}/*.png`` (made by
``datasets/prepare_ade20k_panoptic.py``).

Registered: ``ade20k_150_sem_seg_{train,val}`` and ``ade20k_150_panoptic_{train,val}``.
Class names are detectron2's ``ADE20K_SEM_SEG_CATEGORIES``; category id = 0-based SceneParsing id.
"""
import os
from typing import List

from detectron2.data.datasets.builtin_meta import ADE20K_SEM_SEG_CATEGORIES

from .common import clean_class_names, register_dataset
from .panoptic import add_panoptic_annotations, load_panoptic_records
from .semantic import load_semantic_unified

ADE_DIR = "ADEChallengeData2016"
SPLIT_DIRS = {"train": "training", "val": "validation"}

# 1-based SceneParsing-150 ids of the 100 thing classes of the ADE20K instance challenge, in the
# order of their instance ids 1..100 (ADE20K's ``ade20k_instance_catid_mapping.txt``).
ADE20K_THING_IDS_1BASED = (
    8, 9, 11, 13, 15, 16, 19, 20, 21, 23, 24, 25, 28, 31, 32, 33, 34, 36, 37, 38,
    39, 40, 42, 43, 44, 45, 46, 48, 50, 51, 54, 56, 57, 58, 59, 63, 65, 66, 67, 68,
    70, 71, 72, 73, 74, 75, 76, 77, 79, 81, 82, 83, 84, 86, 87, 88, 89, 90, 91, 93,
    94, 96, 98, 99, 103, 104, 105, 108, 109, 111, 112, 113, 116, 117, 119, 120, 121, 122, 124, 125,
    126, 127, 128, 130, 131, 133, 134, 135, 136, 137, 138, 139, 140, 143, 144, 145, 147, 148, 149, 150,
)  # fmt: skip
ADE20K_THING_IDS = frozenset(i - 1 for i in ADE20K_THING_IDS_1BASED)


def ade20k_paths(root: str, split: str) -> dict:
    """Absolute paths of one ADE20K split under the datasets ``root``."""
    base = os.path.join(root, ADE_DIR)
    folder = SPLIT_DIRS[split]
    return {
        "image_root": os.path.join(base, "images", folder),
        "sem_seg_root": os.path.join(base, "annotations_detectron2", folder),
        "panoptic_json": os.path.join(base, f"ade20k_panoptic_{split}.json"),
        "panoptic_root": os.path.join(base, f"ade20k_panoptic_{split}"),
    }


def ade20k_panoptic_metadata() -> dict:
    """Class lists and id maps in detectron2's panoptic conventions (ids 0..149 are contiguous)."""
    names = list(ADE20K_SEM_SEG_CATEGORIES)
    thing_ids = sorted(ADE20K_THING_IDS)
    return {
        "stuff_classes": names,
        "thing_classes": [names[i] for i in thing_ids],
        "stuff_dataset_id_to_contiguous_id": {i: i for i in range(len(names))},
        "thing_dataset_id_to_contiguous_id": {i: i for i in thing_ids},
    }


def load_ade20k_semantic(root: str, split: str) -> List[dict]:
    """ADE20K-150 semantic ``split`` under ``root``: one target per class present."""
    paths = ade20k_paths(root, split)
    return load_semantic_unified(paths["sem_seg_root"], paths["image_root"], ignore_label=255)


def load_ade20k_panoptic(root: str, split: str) -> List[dict]:
    """ADE20K-150 panoptic ``split`` under ``root``: things with boxes, stuff without."""
    paths = ade20k_paths(root, split)
    meta = ade20k_panoptic_metadata()
    records = load_panoptic_records(
        paths["panoptic_json"],
        paths["image_root"],
        paths["panoptic_root"],
        meta["thing_dataset_id_to_contiguous_id"],
        meta["stuff_dataset_id_to_contiguous_id"],
    )
    for record in records:
        stem = os.path.splitext(os.path.basename(record["pan_seg_file_name"]))[0]
        record["sem_seg_file_name"] = os.path.join(paths["sem_seg_root"], stem + ".png")
    return add_panoptic_annotations(records, desc=f"ade20k {split} panoptic -> unified",
                                    source=paths["panoptic_json"])


def register_ade20k(root: str) -> None:
    """Register ``ade20k_150_{sem_seg,panoptic}_{train,val}`` rooted at ``root``."""
    text_prompts = clean_class_names(ADE20K_SEM_SEG_CATEGORIES)
    for split in SPLIT_DIRS:
        paths = ade20k_paths(root, split)
        register_dataset(
            f"ade20k_150_sem_seg_{split}",
            lambda s=split: load_ade20k_semantic(root, s),
            task="semantic",
            evaluator_type="sem_seg",
            text_prompts=text_prompts,
            stuff_classes=list(ADE20K_SEM_SEG_CATEGORIES),
            image_root=paths["image_root"],
            sem_seg_root=paths["sem_seg_root"],
            ignore_label=255,
        )
        register_dataset(
            f"ade20k_150_panoptic_{split}",
            lambda s=split: load_ade20k_panoptic(root, s),
            task="panoptic",
            evaluator_type="coco_panoptic_seg",
            text_prompts=text_prompts,
            **ade20k_panoptic_metadata(),
            **paths,
            ignore_label=255,
            label_divisor=1000,
        )
