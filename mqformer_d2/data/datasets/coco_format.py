"""COCO-format json (instances / detection) -> unified records, from one parse of the json.

Used where the json's own category list is the vocabulary (SeginW, Objects365) or where
detectron2's ``load_coco_json`` cannot read the json (LVIS has no image file names). Category ids
become contiguous indices into the sorted category list, so they index ``text_prompts``.
"""
import logging
import os
from collections import defaultdict
from typing import Callable, Dict, List, Optional

from detectron2.structures import BoxMode

logger = logging.getLogger(__name__)
_EXAMPLES = 3  # annotations named in a warning


def contiguous_ids(categories: List[dict]) -> Dict[int, int]:
    """Dataset category id -> index in the id-sorted category list."""
    return {c["id"]: i for i, c in enumerate(sorted(categories, key=lambda c: c["id"]))}


def _valid_polygons(segmentation) -> Optional[list]:
    """Polygons with at least 3 points, an RLE dict unchanged, None when there is no segmentation.
    A polygon list with no such polygon stays an (empty) list, which the training data checks
    report as an empty polygon (``annotation_checks``)."""
    if isinstance(segmentation, dict) or segmentation is None:
        return segmentation
    return [p for p in segmentation if len(p) % 2 == 0 and len(p) >= 6]


def coco_annotation(ann: dict, id_map: Dict[int, int], with_masks: bool = True) -> dict:
    """One unified annotation from a COCO annotation dict, keeping its ``id``. A category_id that
    is not in the json's categories becomes None with the json's id in ``unknown_category_id``:
    the data checks report it (naming the annotation) and training drops it, or refuses it."""
    out = {
        "id": ann.get("id"),
        "bbox": [float(v) for v in ann["bbox"]],
        "bbox_mode": BoxMode.XYWH_ABS,
        "category_id": id_map.get(ann["category_id"]),
        "has_box": True,
        "iscrowd": int(ann.get("iscrowd", 0)),
    }
    if ann["category_id"] not in id_map:
        out["unknown_category_id"] = ann["category_id"]
    segmentation = _valid_polygons(ann.get("segmentation")) if with_masks else None
    if segmentation is not None:
        out["segmentation"] = segmentation
    return out


def coco_records(
    info: dict,
    image_root: str,
    id_map: Optional[Dict[int, int]] = None,
    file_name_fn: Optional[Callable[[str, dict], str]] = None,
    with_masks: bool = True,
    source: str = "",
) -> List[dict]:
    """Unified records (one per image, sorted by image id) of a parsed COCO-format json.

    ``id_map`` defaults to :func:`contiguous_ids` of the json's categories; ``file_name_fn(root,
    image)`` gives an image's path (default ``root/image["file_name"]``); ``with_masks=False``
    drops segmentations (detection data). Annotations whose ``image_id`` is not in ``images``
    are dropped with one warning naming ``source`` (the json file), their count and first ids."""
    id_map = id_map if id_map is not None else contiguous_ids(info["categories"])
    file_name_fn = file_name_fn or (lambda root, image: os.path.join(root, image["file_name"]))
    per_image = defaultdict(list)
    for ann in info["annotations"]:
        per_image[ann["image_id"]].append(coco_annotation(ann, id_map, with_masks))
    _warn_about_unknown_images(info, per_image, source or f"the COCO json of {image_root}")
    records = []
    for image in sorted(info["images"], key=lambda x: x["id"]):
        records.append(
            {
                "file_name": file_name_fn(image_root, image),
                "height": image["height"],
                "width": image["width"],
                "image_id": image["id"],
                "annotations": per_image[image["id"]],
            }
        )
    return records


def _warn_about_unknown_images(info: dict, per_image: Dict, source: str) -> None:
    """One warning when annotations name an image_id that ``images`` does not list."""
    known = {image["id"] for image in info["images"]}
    orphans = [(image_id, ann["id"]) for image_id, anns in per_image.items() if image_id not in known
               for ann in anns]
    if orphans:
        examples = "; ".join(f"annotation id {ann_id} (image_id {image_id})"
                             for image_id, ann_id in orphans[:_EXAMPLES])
        logger.warning("%s: %d annotation(s) have an image_id that is not in its 'images' and are dropped, "
                       "e.g. %s%s", source, len(orphans), examples, "; ..." if len(orphans) > _EXAMPLES else "")
