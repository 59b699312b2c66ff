"""COCO (panoptic, instance) and LVIS in the unified format.

Detectron2's builtin registrations (``coco_2017_train``, ``coco_2017_train_panoptic``,
``lvis_v1_train``, ...) stay as they are; this module adds unified variants at the same paths,
reusing detectron2's loaders (``load_coco_json``, ``load_coco_panoptic_json``) and builtin
metadata (class lists, id maps):

- ``coco_2017_{train,val}_unified_panoptic``: one annotation per panoptic segment, masks from the
  panoptic PNG; things have boxes, stuff has ``has_box=False``; category ids index the 133 classes.
- ``coco_2017_{train,val}_unified_instance``: the 80 thing classes, polygons from the instances json.
- ``lvis_v1_{train,val}_unified``: the 1203 LVIS classes (read with pycocotools, so the ``lvis``
  package is not needed).
"""
import os
from typing import Dict, List

from detectron2.data.datasets.builtin_meta import _get_builtin_metadata
from detectron2.data.datasets.coco import load_coco_json
from detectron2.data.datasets.coco_panoptic import load_coco_panoptic_json
from detectron2.data.datasets.lvis import get_lvis_instances_meta

from .coco_format import coco_records
from .common import (
    clean_class_names,
    load_json,
    register_dataset,
    require_dir,
    require_file,
)
from .panoptic import add_panoptic_annotations

# split -> (images, panoptic PNGs, panoptic json, instances json), relative to the root.
COCO_SPLITS = {
    split: (
        f"coco/{split}2017",
        f"coco/panoptic_{split}2017",
        f"coco/annotations/panoptic_{split}2017.json",
        f"coco/annotations/instances_{split}2017.json",
    )
    for split in ("train", "val")
}
# split -> (image root holding train2017/ and val2017/, json), relative to the root.
LVIS_SPLITS = {
    "train": ("coco", "lvis/lvis_v1_train.json"),
    "val": ("coco", "lvis/lvis_v1_val.json"),
}


def load_coco_unified_panoptic(root: str, split: str) -> List[dict]:
    """COCO panoptic ``split`` under ``root``: detectron2's panoptic records + unified targets."""
    images, pngs, pan_json, _ = (os.path.join(root, p) for p in COCO_SPLITS[split])
    require_file(pan_json)
    require_dir(images)
    require_dir(pngs)
    meta = _get_builtin_metadata("coco_panoptic_standard")
    try:
        records = load_coco_panoptic_json(pan_json, images, pngs, meta)
    except KeyError as e:  # detectron2's loader looks every segment's category up in COCO's maps
        raise ValueError(f"{pan_json}: a segment has category_id {e.args[0]}, which is not a COCO "
                         "panoptic category") from e
    return add_panoptic_annotations(records, desc=f"coco {split} panoptic -> unified", source=pan_json)


def load_coco_unified_instance(root: str, split: str) -> List[dict]:
    """COCO instances ``split`` under ``root`` with contiguous (0..79) category ids.

    As in :func:`coco_annotation`, an id outside COCO's 80 thing classes becomes None with the
    json's id in ``unknown_category_id`` (annotation ids are kept), so the data checks name the
    file and annotation instead of a bare KeyError."""
    images, _, _, instances_json = (os.path.join(root, p) for p in COCO_SPLITS[split])
    require_file(instances_json)
    require_dir(images)
    id_map = _get_builtin_metadata("coco")["thing_dataset_id_to_contiguous_id"]
    records = load_coco_json(instances_json, images, extra_annotation_keys=["id"])
    for record in records:
        for ann in record["annotations"]:
            json_id = ann["category_id"]
            ann["category_id"] = id_map.get(json_id)
            if ann["category_id"] is None:
                ann["unknown_category_id"] = json_id
            ann["has_box"] = True
    return records


def _lvis_file_name(image_root: str, image: dict) -> str:
    """LVIS images carry no file name: the COCO split folder and name come from ``coco_url``."""
    split_folder, file_name = image["coco_url"].split("/")[-2:]
    return os.path.join(image_root, split_folder, file_name)


def lvis_records(info: dict, image_root: str, id_map: Dict[int, int]) -> List[dict]:
    """Unified records from a parsed LVIS json; LVIS's image-level label lists are kept."""
    records = coco_records(info, image_root, id_map, file_name_fn=_lvis_file_name)
    images = {image["id"]: image for image in info["images"]}
    for record in records:
        image = images[record["image_id"]]
        record["not_exhaustive_category_ids"] = image.get("not_exhaustive_category_ids", [])
        record["neg_category_ids"] = image.get("neg_category_ids", [])
    return records


def load_lvis_unified(root: str, split: str) -> List[dict]:
    """LVIS v1 ``split`` under ``root`` with contiguous (0..1202) category ids."""
    image_root, json_file = (os.path.join(root, p) for p in LVIS_SPLITS[split])
    require_file(json_file)
    require_dir(image_root)
    # LVIS ids are 1..1203 in class order (as detectron2's LVIS loader and evaluator assume).
    num_classes = len(get_lvis_instances_meta("lvis_v1")["thing_classes"])
    id_map = {i + 1: i for i in range(num_classes)}
    return lvis_records(load_json(json_file), image_root, id_map)


def _panoptic_metadata(root: str, split: str) -> dict:
    images, pngs, pan_json, instances_json = (os.path.join(root, p) for p in COCO_SPLITS[split])
    meta = _get_builtin_metadata("coco_panoptic_standard")
    return dict(
        meta,
        task="panoptic",
        evaluator_type="coco_panoptic_seg",
        text_prompts=clean_class_names(meta["stuff_classes"]),
        image_root=images,
        panoptic_root=pngs,
        panoptic_json=pan_json,
        json_file=instances_json,
        ignore_label=255,
        label_divisor=1000,
    )


def register_coco_unified(root: str) -> None:
    """Register the unified COCO panoptic / instance and LVIS variants rooted at ``root``."""
    for split in COCO_SPLITS:
        images, _, _, instances_json = (os.path.join(root, p) for p in COCO_SPLITS[split])
        register_dataset(
            f"coco_2017_{split}_unified_panoptic",
            lambda s=split: load_coco_unified_panoptic(root, s),
            **_panoptic_metadata(root, split),
        )
        instance_meta = _get_builtin_metadata("coco")
        register_dataset(
            f"coco_2017_{split}_unified_instance",
            lambda s=split: load_coco_unified_instance(root, s),
            **instance_meta,
            task="instance",
            evaluator_type="coco",
            text_prompts=clean_class_names(instance_meta["thing_classes"]),
            image_root=images,
            json_file=instances_json,
        )
    lvis_meta = get_lvis_instances_meta("lvis_v1")
    for split, (image_root, json_file) in LVIS_SPLITS.items():
        register_dataset(
            f"lvis_v1_{split}_unified",
            lambda s=split: load_lvis_unified(root, s),
            **lvis_meta,
            task="instance",
            evaluator_type="lvis",
            text_prompts=clean_class_names(lvis_meta["thing_classes"]),
            image_root=os.path.join(root, image_root),
            json_file=os.path.join(root, json_file),
        )


__all__ = [
    "load_coco_unified_panoptic",
    "load_coco_unified_instance",
    "load_lvis_unified",
    "lvis_records",
    "register_coco_unified",
]
