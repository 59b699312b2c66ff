"""Panoptic PNG + segments_info -> unified annotations (shared by COCO and ADE20K panoptic).

Things keep their boxes; stuff segments get ``has_box=False`` (a stuff region's box is not
meaningful, as in Mask DINO). Masks come from the panoptic PNG, decoded with panopticapi. Each
annotation keeps its segment id as ``id``. A segment whose category is in neither id map gets
``category_id`` None and ``unknown_category_id`` (the data checks report and drop it, as for COCO
jsons); ``segments_info`` entries without a pixel in the PNG are dropped with one warning per dataset.
"""
import logging
import os
from typing import Dict, List

import numpy as np
from panopticapi.utils import rgb2id
from PIL import Image

from .common import load_json, map_with_progress, mask_annotation, require_dir, require_file

logger = logging.getLogger(__name__)
_EXAMPLES = 3  # segments named in a warning


def panoptic_annotations(record: dict) -> dict:
    """Add ``annotations``, ``height`` and ``width`` to a record holding ``pan_seg_file_name``
    and ``segments_info`` (whose ``category_id`` is already contiguous and ``isthing`` set)."""
    segment_ids = rgb2id(np.asarray(Image.open(record["pan_seg_file_name"]).convert("RGB")))
    annotations = []
    for segment in record["segments_info"]:
        mask = segment_ids == segment["id"]
        if not mask.any():
            continue
        unknown = {"unknown_category_id": segment["unknown_category_id"]} if "unknown_category_id" in segment else {}
        annotations.append(
            mask_annotation(
                mask,
                segment["category_id"],
                has_box=bool(segment["isthing"]),
                iscrowd=int(segment.get("iscrowd", 0)),
                id=segment["id"],
                **unknown,
            )
        )
    record = dict(record)
    record["height"], record["width"] = segment_ids.shape
    record["annotations"] = annotations
    return record


def add_panoptic_annotations(records: List[dict], desc: str, source: str = "") -> List[dict]:
    """:func:`panoptic_annotations` over a dataset, with a progress bar (``desc``); one warning
    naming ``source`` (default ``desc``), the count and the first few when segments of
    ``segments_info`` have no pixel in their PNG (an id the PNG does not hold): they are dropped."""
    converted = map_with_progress(panoptic_annotations, records, desc=desc)
    absent = []
    for record, done in zip(records, converted):
        found = {annotation["id"] for annotation in done["annotations"]}
        absent += [f"{record['pan_seg_file_name']} segment id {segment['id']}"
                   for segment in record["segments_info"] if segment["id"] not in found]
    if absent:
        total = sum(len(record["segments_info"]) for record in records)
        logger.warning("%s: %d of %d segments_info entries have no pixel in their panoptic PNG (segment id not "
                       "in the PNG) and are dropped, e.g. %s", source or desc, len(absent), total,
                       "; ".join(absent[:_EXAMPLES]) + ("; ..." if len(absent) > _EXAMPLES else ""))
    return converted


def load_panoptic_records(
    json_file: str,
    image_dir: str,
    panoptic_dir: str,
    thing_ids: Dict[int, int],
    stuff_ids: Dict[int, int],
    image_ext: str = ".jpg",
) -> List[dict]:
    """Records of a COCO-panoptic-format json whose image ids may be strings (ADE20K).

    ``thing_ids`` / ``stuff_ids`` map dataset category ids to contiguous ids; a category in
    ``thing_ids`` is a thing, one in neither map an unknown category (see the module docstring).
    Image ``X.png`` of the json pairs with ``image_dir/X<image_ext>``."""
    info = load_json(json_file)
    require_dir(image_dir)
    require_dir(panoptic_dir)
    records = []
    for ann in info["annotations"]:
        stem = os.path.splitext(ann["file_name"])[0]
        segments = []
        for segment in ann["segments_info"]:
            dataset_id = segment["category_id"]
            isthing = dataset_id in thing_ids
            contiguous = thing_ids[dataset_id] if isthing else stuff_ids.get(dataset_id)
            unknown = {"unknown_category_id": dataset_id} if contiguous is None else {}
            segments.append(dict(segment, category_id=contiguous, isthing=isthing, **unknown))
        records.append(
            {
                "file_name": os.path.join(image_dir, stem + image_ext),
                "image_id": ann["image_id"],
                "pan_seg_file_name": os.path.join(panoptic_dir, ann["file_name"]),
                "segments_info": segments,
            }
        )
    if records:
        require_file(records[0]["pan_seg_file_name"])
    return records
