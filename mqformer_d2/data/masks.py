"""The package's one home for mask <-> annotation conversions: a binary mask to COCO RLE, a COCO
segmentation (polygons, RLE with list / str / bytes counts) to a mask, and a mask's tight box
(computed by `layers.box_utils.masks_to_pixel_boxes`, which the model's boxes share).

Dataset loaders, the mapper's targets, the evaluators, the synthetic benchmark's writer and the
synthetic data engine all call these; pycocotools does the encoding and decoding.
"""
from typing import List, Optional

import numpy as np
import pycocotools.mask as mask_util
import torch

from ..layers.box_utils import masks_to_pixel_boxes


def encode_mask(mask: np.ndarray) -> dict:
    """Binary (H, W) mask -> COCO RLE dict ``{"size": [H, W], "counts": str}`` (json-serialisable)."""
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def rle_xywh_box(rle: dict) -> List[float]:
    """Tight XYWH box of an RLE mask (zeros for an empty one), as floats."""
    return [float(v) for v in mask_util.toBbox(rle)]


def _check_rle(rle: dict, height: int, width: int) -> None:
    """Refuse an RLE of another size, and uncompressed counts that do not cover the image (which
    pycocotools would decode into a wrong mask instead of failing)."""
    if list(rle.get("size", ())) != [height, width]:
        raise ValueError(f"invalid RLE: size {rle.get('size')} is not the image's [{height}, {width}]")
    counts = rle.get("counts")
    if isinstance(counts, list) and (sum(counts) != height * width or min(counts, default=0) < 0):
        raise ValueError(f"invalid RLE: its counts sum to {sum(counts)}, not height x width = {height * width}")


def _check_polygons(polygons: list) -> None:
    """Refuse polygons that are not flat lists of at least 3 (x, y) points: pycocotools takes a
    4-number polygon for a box and fails with a TypeError that names nothing."""
    for index, polygon in enumerate(polygons):
        if not isinstance(polygon, (list, tuple)) or len(polygon) < 6 or len(polygon) % 2:
            size = len(polygon) if isinstance(polygon, (list, tuple)) else type(polygon).__name__
            raise ValueError(f"invalid polygon {index}: {size} coordinates; a polygon is a flat list "
                             "[x0, y0, x1, y1, ...] of at least 3 points (6 numbers, an even count)")


def segmentation_to_rle(segmentation, height: int, width: int) -> dict:
    """A COCO segmentation -> one RLE of the (height, width) image, as pycocotools' functions
    (decode, area, iou) take it.

    Polygons (a list of [x0, y0, x1, y1, ...]) are merged into one mask. An RLE dict must have the
    image's ``size``; its ``counts`` may be a list (uncompressed) or a compressed str or bytes
    (pycocotools reads both)."""
    if isinstance(segmentation, list):
        _check_polygons(segmentation)
        return mask_util.merge(mask_util.frPyObjects(segmentation, height, width))
    if isinstance(segmentation, dict):
        _check_rle(segmentation, height, width)
        if isinstance(segmentation.get("counts"), list):
            return mask_util.frPyObjects(segmentation, height, width)
        return segmentation
    raise TypeError(f"unsupported segmentation type {type(segmentation).__name__}")


def decode_segmentation(segmentation, height: int, width: int) -> np.ndarray:
    """A COCO segmentation (see `segmentation_to_rle`) -> (height, width) uint8 0/1 mask."""
    return mask_util.decode(segmentation_to_rle(segmentation, height, width))


def mask_to_box(mask: np.ndarray) -> Optional[np.ndarray]:
    """Tight (4,) float32 XYXY box of an (H, W) mask (pixel edges included), or None when empty."""
    box, non_empty = masks_to_pixel_boxes(torch.from_numpy(np.ascontiguousarray(mask, dtype=bool)))
    return box.numpy().astype(np.float32) if bool(non_empty) else None
