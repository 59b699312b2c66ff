"""Panoptic PNG + segments_info -> unified annotations (shared by COCO and ADE20K panoptic).

Things keep their boxes; stuff segments get ``has_box=False`` (a stuff region's box is not
meaningful, as in Mask DINO). Masks come from the panoptic PNG, decoded with panopticapi.
"""
import os
from typing import Dict, List

import numpy as np
from panopticapi.utils import rgb2id
from PIL import Image

from .common import load_json, map_with_progress, mask_annotation, require_dir, require_file


def panoptic_annotations(record: dict) -> dict:
    """Add ``annotations``, ``height`` and ``width`` to a record holding ``pan_seg_file_name``
    and ``segments_info`` (whose ``category_id`` is already contiguous and ``isthing`` set)."""
    segment_ids = rgb2id(np.asarray(Image.open(record["pan_seg_file_name"]).convert("RGB")))
    annotations = []
    for segment in record["segments_info"]:
        mask = segment_ids == segment["id"]
        if not mask.any():
            continue
        annotations.append(
            mask_annotation(
                mask,
                segment["category_id"],
                has_box=bool(segment["isthing"]),
                iscrowd=int(segment.get("iscrowd", 0)),
            )
        )
    record = dict(record)
    record["height"], record["width"] = segment_ids.shape
    record["annotations"] = annotations
    return record


def add_panoptic_annotations(records: List[dict], desc: str) -> List[dict]:
    """:func:`panoptic_annotations` over a dataset, with a progress bar."""
    return map_with_progress(panoptic_annotations, records, desc=desc)


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
    ``thing_ids`` is a thing. Image ``X.png`` of the json pairs with ``image_dir/X<image_ext>``."""
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
            contiguous = thing_ids[dataset_id] if isthing else stuff_ids[dataset_id]
            segments.append(dict(segment, category_id=contiguous, isthing=isthing))
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
