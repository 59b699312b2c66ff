"""How good synthetic masks are: the mask tool's per-mask quality (no ground truth needed) and the
mean IoU of a synthetic file against real masks."""
from typing import Dict, Sequence

import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.data import DatasetCatalog
from torchvision.ops import box_iou

from ..data.masks import mask_to_box, segmentation_to_rle
from .registration import load_synthetic_json


def box_iou_of_mask(mask: np.ndarray, box: Sequence[float]) -> float:
    """IoU of the tight box of an (H, W) bool mask with an XYXY box; 0 for an empty mask (a
    non-empty mask's box covers at least one pixel, so the union is never 0)."""
    tight = mask_to_box(mask)
    if tight is None:
        return 0.0
    # float64: the tight box's integer corners exactly, and the IoU the tool has always written.
    return float(box_iou(torch.tensor(tight[None], dtype=torch.float64), torch.tensor([box], dtype=torch.float64))[0, 0])


def synthetic_mask_iou(json_file: str, image_root: str, reference: str) -> Dict[str, float]:
    """Mean IoU of a synthetic mask file against the real masks of `reference` (the same images
    and annotations in the same order, e.g. the dataset whose masks were hidden).

    Returns ``miou`` over the annotations that kept a mask, ``miou_all`` counting dropped masks as
    0, and the counts ``kept`` / ``total``."""
    real = {r["image_id"]: r for r in DatasetCatalog.get(reference)}
    ious, total = [], 0
    for record in load_synthetic_json(json_file, image_root):
        if record["image_id"] not in real:
            raise KeyError(f"{json_file}: image {record['image_id']} is not in '{reference}'")
        truth = real[record["image_id"]]
        size = (record["height"], record["width"])
        for ann, true_ann in zip(record["annotations"], truth["annotations"]):
            if "segmentation" not in true_ann or ann.get("iscrowd", 0):
                continue
            total += 1
            if "segmentation" in ann and "quality" in ann:
                synthetic, true = (segmentation_to_rle(a["segmentation"], *size) for a in (ann, true_ann))
                ious.append(float(mask_util.iou([synthetic], [true], [0])[0, 0]))  # 0 when both are empty
    return {"miou": float(np.mean(ious)) if ious else 0.0, "miou_all": float(np.sum(ious) / max(total, 1)),
            "kept": len(ious), "total": total}
