"""Checks of a dataset's records before training: missing image files, bad annotations, and
whether anything is left to train on.

Bad annotations are counted per reason and reported in one log line per (dataset, reason) with a
few examples; with ``DATALOADER.BAD_ANNOTATIONS "error"`` they are an error instead. With
``"warn"`` (the default) each is handled as ``HANDLING`` says.
"""
import logging
import os
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.structures import BoxMode
from detectron2.structures.masks import polygon_area as detectron2_polygon_area

logger = logging.getLogger(__name__)

POLICIES = ("warn", "error")
# reason -> what it is, and what happens to such an annotation with "warn"
HANDLING = {
    "degenerate box": "box of zero or negative width or height; dropped unless its mask gives the box",
    "out-of-image": "box reaching more than 1 pixel outside the image; clipped to the image",
    "empty polygon": "no polygon with 3 points enclosing an area; the mask is removed, the box kept",
    "no sentence": "referring annotation without texts; trained on its class name",
    "unknown category": "no texts and a category_id outside the dataset's text_prompts; dropped",
}
REASONS = tuple(HANDLING)
_EDGE_TOLERANCE = 1.0  # pixels a box may reach outside the image (float rounding at the border)
_EXAMPLES = 3  # examples named per reason
_MISSING_EXAMPLES = 5  # missing files named per dataset
_IMAGE_KEYS = ("file_name", "sem_seg_file_name")  # files the training mapper reads


def check_policy(policy: str) -> str:
    """Return ``policy`` if it is a valid ``DATALOADER.BAD_ANNOTATIONS`` value, else raise."""
    if policy not in POLICIES:
        raise ValueError(f"DATALOADER.BAD_ANNOTATIONS must be one of {POLICIES}, got {policy!r}")
    return policy


def xyxy_box(annotation: dict) -> Optional[List[float]]:
    """The annotation's ``bbox`` as absolute XYXY floats, or None when it has none."""
    box = annotation.get("bbox")
    if box is None:
        return None
    x0, y0, a, b = (float(v) for v in box)
    if annotation.get("bbox_mode", BoxMode.XYWH_ABS) == BoxMode.XYWH_ABS:
        return [x0, y0, x0 + a, y0 + b]
    return list(BoxMode.convert([x0, y0, a, b], annotation["bbox_mode"], BoxMode.XYXY_ABS))


def polygon_area(polygon: Sequence[float]) -> float:
    """Area of one COCO polygon ``[x0, y0, x1, y1, ...]`` (0 when it has under 3 points)."""
    if len(polygon) < 6 or len(polygon) % 2:
        return 0.0
    coordinates = np.asarray(polygon, dtype=np.float64)
    return float(detectron2_polygon_area(coordinates[0::2], coordinates[1::2]))


def is_empty_polygon_list(segmentation) -> bool:
    """Whether a segmentation is a polygon list in which no polygon encloses an area."""
    return isinstance(segmentation, list) and not any(polygon_area(p) > 0 for p in segmentation)


def _box_problem(box: Optional[List[float]], height, width) -> Optional[str]:
    """"degenerate box", "out-of-image" or None for an XYXY box (None: no box) in an image of
    size (height, width) (None: unknown, no out-of-image check)."""
    if box is None:
        return None
    if box[2] <= box[0] or box[3] <= box[1]:
        return "degenerate box"
    if height is not None and width is not None and (
            min(box[0], box[1]) < -_EDGE_TOLERANCE or box[2] > width + _EDGE_TOLERANCE
            or box[3] > height + _EDGE_TOLERANCE):
        return "out-of-image"
    return None


def annotation_problems(annotation: dict, height, width, num_prompts: int, referring: bool) -> List[str]:
    """The reasons (of ``REASONS``) why one annotation of an image of size (height, width) is bad."""
    problems = [_box_problem(xyxy_box(annotation), height, width)]
    if is_empty_polygon_list(annotation.get("segmentation")):
        problems.append("empty polygon")
    texts = annotation.get("texts")
    if referring and not texts:
        problems.append("no sentence")
    category_id = annotation.get("category_id")
    if not texts and not (category_id is not None and 0 <= category_id < num_prompts):
        problems.append("unknown category")
    return [p for p in problems if p is not None]


def handle_annotation(annotation: dict, problems: List[str]) -> Optional[dict]:
    """The annotation as training uses it after ``HANDLING`` (None: dropped). Degenerate and
    out-of-image boxes are left to the mapper, which clips boxes and drops empty ones."""
    if "unknown category" in problems:
        return None
    if "empty polygon" in problems:
        return {k: v for k, v in annotation.items() if k != "segmentation"}
    return annotation


def gives_target(annotation: dict, height, width) -> bool:
    """Whether a handled annotation yields a training target: a mask, or a box with an area
    inside the image."""
    if annotation.get("iscrowd", 0):
        return False
    if "segmentation" in annotation:
        return True
    box = xyxy_box(annotation)
    if box is None:
        return False
    if height is not None and width is not None:
        box = [max(box[0], 0.0), max(box[1], 0.0), min(box[2], width), min(box[3], height)]
    return box[2] > box[0] and box[3] > box[1]


def _where(record: dict, index: int, annotation: dict) -> str:
    """'<file> annotation id <id>' (or 'annotation #<index>' when the annotation has no id)."""
    which = f"id {annotation['id']}" if annotation.get("id") is not None else f"#{index}"
    unknown = annotation.get("unknown_category_id")
    return f"{record.get('file_name')} annotation {which}" + (
        f" (category id {unknown})" if unknown is not None else "")


def _record_problems(record: dict, num_prompts: int, referring: bool, found: Dict[str, List[str]]) -> int:
    """Handle one record's annotations in place, add its problems to ``found``; return how many
    training targets it gives (semantic / foreground records without annotations, and panoptic
    records, whose PNG the mapper reads, count as one)."""
    if "annotations" not in record:
        return int("sem_seg_file_name" in record or "pan_seg_file_name" in record)
    height, width = record.get("height"), record.get("width")
    kept, targets = [], 0
    for index, annotation in enumerate(record["annotations"]):
        problems = annotation_problems(annotation, height, width, num_prompts, referring)
        for problem in problems:
            found[problem].append(_where(record, index, annotation))
        annotation = handle_annotation(annotation, problems)
        if annotation is not None:
            kept.append(annotation)
            targets += gives_target(annotation, height, width)
    record["annotations"] = kept
    return targets


def _summaries(name: str, found: Dict[str, List[str]]) -> List[str]:
    """One line per reason found: dataset, count, what it is and its handling, first examples."""
    lines = []
    for reason in REASONS:
        places = found.get(reason, [])
        if places:
            examples = "; ".join(places[:_EXAMPLES]) + ("; ..." if len(places) > _EXAMPLES else "")
            lines.append(f"dataset '{name}': {len(places)} annotation(s) with {reason} "
                         f"({HANDLING[reason]}), e.g. {examples}")
    return lines


def check_annotations(name: str, records: List[dict], policy: str = "warn", training: bool = True) -> List[dict]:
    """Count and report the bad annotations of dataset ``name`` and return its records with them
    handled (in place). With ``policy`` "error" bad annotations raise a ValueError naming the
    dataset, the reasons and the first files and annotations; in training, a dataset left with
    no usable target is a ValueError whatever the policy."""
    check_policy(policy)
    metadata = MetadataCatalog.get(name)
    num_prompts = len(metadata.get("text_prompts", None) or [])
    referring = metadata.get("task", None) == "referring"
    found: Dict[str, List[str]] = defaultdict(list)
    targets = sum(_record_problems(record, num_prompts, referring, found) for record in records)
    lines = _summaries(name, found)
    if lines and policy == "error":
        raise ValueError("\n".join(lines) + "\n(DATALOADER.BAD_ANNOTATIONS is 'error'; 'warn' "
                         "handles them as docs/usage.md says)")
    for line in lines:
        logger.warning(line)
    if training and targets == 0:
        counts = ", ".join(f"{len(v)} {k}" for k, v in found.items()) or "no annotations"
        raise ValueError(f"dataset '{name}': no usable training target in its {len(records)} "
                         f"images ({counts}); nothing to train on")
    return records


def check_image_files(name: str, records: List[dict], role: str = "training") -> None:
    """Raise a FileNotFoundError naming dataset ``name`` (a ``role`` "training" or "test" set),
    how many of the files its records read are missing and the first few of them (one existence
    check per file)."""
    missing = [record[key] for record in records for key in _IMAGE_KEYS
               if key in record and not os.path.exists(record[key])]
    if missing:
        shown = ", ".join(missing[:_MISSING_EXAMPLES]) + (", ..." if len(missing) > _MISSING_EXAMPLES else "")
        raise FileNotFoundError(f"dataset '{name}': {len(missing)} file(s) of its {len(records)} "
                                f"{role} images are missing: {shown}")
