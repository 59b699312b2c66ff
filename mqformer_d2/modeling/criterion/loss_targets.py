"""Training targets for the criterion, from the mapper's `instances` (docs/data_format.md)."""
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.structures import Instances
from torch import Tensor

from mqformer_d2.layers import xyxy_to_cxcywh


def instances_to_targets(
    instances: Sequence[Instances], local_to_union: Sequence[Tensor], padded_size: Tuple[int, int]
) -> List[Dict[str, Tensor]]:
    """One criterion target dict per image.

    Args:
        instances: per image, K targets at the augmented image size (gt_boxes XYXY absolute,
            gt_masks BitMasks, gt_text_ids indices into the image's vocabulary, and optional
            gt_has_mask / gt_has_box).
        local_to_union: per image, (T_b,) union index of each vocabulary text.
        padded_size: (Hpad, Wpad) of the batch.

    Returns:
        dicts with labels (K,) int64 into the union, boxes (K, 4) cxcywh normalised by the
        unpadded image size, masks (K, Hpad, Wpad) bool, has_mask (K,) bool, has_box (K,) bool.
    """
    return [
        _image_targets(inst, ids, padded_size, index)
        for index, (inst, ids) in enumerate(zip(instances, local_to_union))
    ]


def batch_targets(batched_inputs: Sequence[Dict], local_to_union: Sequence[Tensor], padded_size: Tuple[int, int],
                  device: torch.device) -> List[Dict[str, Tensor]]:
    """`instances_to_targets` of labelled model inputs (each with "instances"), moved to `device`.

    Args:
        batched_inputs: B mapper outputs with "instances".
        local_to_union: per image, (T_b,) union index of each vocabulary text (`TextBatch`).
        padded_size: (Hpad, Wpad) of the batch.
    """
    missing = [i for i, x in enumerate(batched_inputs) if "instances" not in x]
    if missing:
        raise ValueError(f"training needs batched_inputs[i]['instances']; missing for i in {missing}")
    instances = [x["instances"].to(device) for x in batched_inputs]
    return instances_to_targets(instances, local_to_union, padded_size)


def _image_targets(inst: Instances, local_to_union: Tensor, padded_size, index: int) -> Dict[str, Tensor]:
    for field in ("gt_boxes", "gt_text_ids"):
        if not inst.has(field):
            raise ValueError(f"batched_inputs[{index}]['instances'] lacks the field {field!r}")
    height, width = inst.image_size
    device = local_to_union.device
    text_ids = inst.gt_text_ids.to(device)
    if len(text_ids) and (int(text_ids.min()) < 0 or int(text_ids.max()) >= len(local_to_union)):
        raise ValueError(
            f"batched_inputs[{index}]['instances'].gt_text_ids has values outside "
            f"[0, {len(local_to_union)}) (the image's 'vocabulary' size)"
        )
    scale = torch.tensor([width, height, width, height], dtype=torch.float32, device=device)
    boxes = xyxy_to_cxcywh(inst.gt_boxes.tensor.to(device).float() / scale).clamp(0.0, 1.0)
    num = len(inst)
    if inst.has("gt_masks"):
        masks = inst.gt_masks.tensor.to(device).bool()
        pad_h, pad_w = padded_size[0] - masks.shape[-2], padded_size[1] - masks.shape[-1]
        masks = F.pad(masks, (0, pad_w, 0, pad_h))
        has_mask = inst.gt_has_mask.to(device).bool() if inst.has("gt_has_mask") else masks.flatten(1).any(1)
    else:
        masks = torch.zeros(num, *padded_size, dtype=torch.bool, device=device)
        has_mask = torch.zeros(num, dtype=torch.bool, device=device)
    if inst.has("gt_has_box"):
        has_box = inst.gt_has_box.to(device).bool()
    else:
        has_box = torch.ones(num, dtype=torch.bool, device=device)
    return {
        "labels": local_to_union[text_ids],
        "boxes": boxes,
        "masks": masks,
        "has_mask": has_mask,
        "has_box": has_box,
    }
