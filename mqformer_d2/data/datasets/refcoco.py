"""RefCOCO, RefCOCO+ and RefCOCOg (referring segmentation), unified format, without the REFER API.

Layout under ``$DETECTRON2_DATASETS`` (the official ``refer`` data release + COCO train2014):
``refcoco/{refs(unc).p,instances.json}``, ``refcoco+/{refs(unc).p,instances.json}``,
``refcocog/{refs(umd).p,refs(google).p,instances.json}`` and ``coco/train2014/*.jpg``.

Registered (task ``referring``, evaluator ``referring``): ``refcoco_unc_{train,val,testA,testB}``,
``refcoco+_unc_{train,val,testA,testB}``, ``refcocog_umd_{train,val,test}``,
``refcocog_google_{train,val}``.

One record per image; one annotation per ref (the COCO object it refers to: box, polygons,
category) with every sentence kept: ``texts`` (the refs' tokenised ``sent`` strings), and, in the
same order, ``sent_ids``; plus ``ref_id`` and ``ann_id``. An evaluator iterates
``zip(ann["sent_ids"], ann["texts"])`` for the standard every-sentence protocol, or takes the first
sentence only (X-Decoder's protocol).
"""
import os
from collections import defaultdict
from typing import Any, Dict, List

from detectron2.data.datasets.builtin_meta import _get_builtin_metadata
from detectron2.structures import BoxMode

from ...safe_pickle import UnsafePickleError, loads_pickle_safely
from .common import clean_class_names, load_json, register_dataset, require_dir, require_file

# (dataset folder, split_by) -> splits
REFCOCO_SPLITS = {
    ("refcoco", "unc"): ("train", "val", "testA", "testB"),
    ("refcoco+", "unc"): ("train", "val", "testA", "testB"),
    ("refcocog", "umd"): ("train", "val", "test"),
    ("refcocog", "google"): ("train", "val"),
}
COCO_TRAIN2014 = os.path.join("coco", "train2014")


def load_refs(path: str) -> List[dict]:
    """The list of refs of an official ``refs(<split_by>).p`` pickle (written by Python 2).

    Read with `safe_pickle` (lists, dicts, strings and numbers only): a pickle that would run code
    is refused with an error naming the file."""
    with open(require_file(path), "rb") as f:
        data = f.read()
    try:
        try:
            return loads_pickle_safely(data)
        except UnicodeDecodeError:  # Python-2 byte strings that are not ASCII
            return loads_pickle_safely(data, encoding="latin1")
    except UnsafePickleError as e:
        raise ValueError(f"{path}: not a RefCOCO refs file: {e}") from None


def lookup(table: Dict[int, Any], key: int, what: str, ref: dict, path: str):
    """``table[key]``, or a ValueError naming the file, the ref and the missing ``what`` ``key``
    (refs and instances.json of different releases, or a truncated download)."""
    try:
        return table[key]
    except KeyError:
        raise ValueError(f"{path}: ref {ref.get('ref_id')!r}: no {what} {key!r}") from None


def ref_annotation(ref: dict, ann: dict, id_map: Dict[int, int], instances_path: str) -> dict:
    """The unified annotation of one ref: its COCO object plus all its sentences."""
    sentences = ref["sentences"]
    category_id = lookup(id_map, ann["category_id"], "COCO thing category (of the 80) with id", ref, instances_path)
    return {
        "bbox": [float(v) for v in ann["bbox"]],
        "bbox_mode": BoxMode.XYWH_ABS,
        "segmentation": ann["segmentation"],
        "category_id": category_id,
        "has_box": True,
        "iscrowd": int(ann.get("iscrowd", 0)),
        "texts": [s["sent"] for s in sentences],
        "sent_ids": [s["sent_id"] for s in sentences],
        "ref_id": ref["ref_id"],
        "ann_id": ref["ann_id"],
    }


def load_refcoco(root: str, dataset: str, split_by: str, split: str) -> List[dict]:
    """Records of ``dataset`` (``refcoco``, ``refcoco+``, ``refcocog``) split ``split`` of the
    ``split_by`` partition (``unc``, ``umd``, ``google``), under ``root``."""
    folder = os.path.join(root, dataset)
    instances_path = os.path.join(folder, "instances.json")
    refs = load_refs(os.path.join(folder, f"refs({split_by}).p"))
    instances = load_json(instances_path)
    image_root = require_dir(os.path.join(root, COCO_TRAIN2014))
    anns = {a["id"]: a for a in instances["annotations"]}
    images = {i["id"]: i for i in instances["images"]}
    id_map = _get_builtin_metadata("coco")["thing_dataset_id_to_contiguous_id"]
    per_image = defaultdict(list)
    for ref in refs:
        if ref["split"] == split:
            ann = lookup(anns, ref["ann_id"], "annotation with id", ref, instances_path)
            per_image[ref["image_id"]].append(ref_annotation(ref, ann, id_map, instances_path))
    records = []
    for image_id in sorted(per_image):
        image = lookup(images, image_id, "image with id", per_image[image_id][0], instances_path)
        records.append(
            {
                "file_name": os.path.join(image_root, image["file_name"]),
                "height": image["height"],
                "width": image["width"],
                "image_id": image_id,
                "annotations": sorted(per_image[image_id], key=lambda a: a["ref_id"]),
            }
        )
    return records


def register_refcoco(root: str) -> None:
    """Register every RefCOCO/RefCOCO+/RefCOCOg split rooted at ``root``."""
    coco_meta = _get_builtin_metadata("coco")
    for (dataset, split_by), splits in REFCOCO_SPLITS.items():
        for split in splits:
            register_dataset(
                f"{dataset}_{split_by}_{split}",
                lambda d=dataset, b=split_by, s=split: load_refcoco(root, d, b, s),
                task="referring",
                evaluator_type="referring",
                text_prompts=clean_class_names(coco_meta["thing_classes"]),
                thing_classes=coco_meta["thing_classes"],
                thing_dataset_id_to_contiguous_id=coco_meta["thing_dataset_id_to_contiguous_id"],
                image_root=os.path.join(root, COCO_TRAIN2014),
                refs_file=os.path.join(root, dataset, f"refs({split_by}).p"),
                instances_json=os.path.join(root, dataset, "instances.json"),
            )
