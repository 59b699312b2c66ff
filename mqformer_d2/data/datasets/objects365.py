"""Objects365 v2 as detection data (boxes + class names, no masks), unified format.

Layout under ``$DETECTRON2_DATASETS/objects365``: ``annotations/zhiyuan_objv2_{train,val}.json``
(COCO format) and ``{train,val}/patch<N>/*.jpg``. The v2 jsons name images
``images/v1/patch<N>/<file>.jpg`` or ``images/v2/patch<N>/<file>.jpg``; that ``images/v*/`` prefix is
dropped, so ``train/patch8/objects365_v1_00420917.jpg`` is found from either form.

Registered: ``objects365_v2_{train,val}`` (task ``detection``: every target has ``has_box`` True and
no ``segmentation``). The 365 class names are read from the val json when first needed.
"""
import os
import re
from typing import List

from .coco_format import coco_records
from .common import JsonCategoryMetadata, load_json, register_dataset, require_dir

OBJECTS365_DIR = "objects365"
_VERSION_PREFIX = re.compile(r"^images/v\d+/")


def objects365_paths(root: str, split: str) -> dict:
    """Image folder and json of an Objects365 v2 split under ``root``."""
    base = os.path.join(root, OBJECTS365_DIR)
    return {
        "image_root": os.path.join(base, split),
        "json_file": os.path.join(base, "annotations", f"zhiyuan_objv2_{split}.json"),
    }


def _objects365_file_name(image_root: str, image: dict) -> str:
    return os.path.join(image_root, _VERSION_PREFIX.sub("", image["file_name"]))


def load_objects365(root: str, split: str) -> List[dict]:
    """Objects365 v2 ``split`` under ``root``: boxes with contiguous category ids, no masks."""
    paths = objects365_paths(root, split)
    info = load_json(paths["json_file"])
    require_dir(paths["image_root"])
    return coco_records(
        info, paths["image_root"], file_name_fn=_objects365_file_name, with_masks=False,
        source=paths["json_file"],
    )


def register_objects365(root: str) -> None:
    """Register ``objects365_v2_{train,val}`` rooted at ``root``."""
    val_json = objects365_paths(root, "val")["json_file"]
    for split in ("train", "val"):
        name = f"objects365_v2_{split}"
        register_dataset(
            name,
            lambda s=split: load_objects365(root, s),
            metadata=JsonCategoryMetadata(name=name),
            task="detection",
            evaluator_type="coco",
            category_json=val_json,
            **objects365_paths(root, split),
        )
