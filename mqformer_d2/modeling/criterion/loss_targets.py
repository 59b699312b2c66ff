"""Training targets of the criterion: made from the mapper's `instances` (docs/data_format.md),
then checked and moved to the predictions' device once per batch (`prepare_targets`), before
the matcher and the losses read them for every prediction set.

Target format (one dict per image, K targets):

    labels   int64 (K,)            index of each target's text in the batch's union text list
    boxes    float (K, 4)          normalised cxcywh
    masks    bool  (K, Hpad, Wpad) at the padded image size (4x the mask-logit size)
    has_mask bool  (K,)            False: no mask cost, no mask loss (detection-only data)
    has_box  bool  (K,)            False: no box cost, no box loss (stuff, as in Mask DINO)
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.structures import Instances
from torch import Tensor

from mqformer_d2.layers import xyxy_to_cxcywh

TARGET_KEYS = ("labels", "boxes", "masks", "has_mask", "has_box")


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


def prepare_targets(targets: Sequence[Dict[str, Tensor]], logits: Tensor,
                    text_valid: Optional[Tensor] = None) -> List[Dict[str, Tensor]]:
    """The targets checked (`validate_targets`) against a prediction set's logits (B, Q, T) and
    moved to their device: what the matcher and the losses take for every prediction set."""
    validate_targets(targets, logits.shape[0], text_valid)
    return [{k: v.to(logits.device) for k, v in t.items()} for t in targets]


def validate_targets(
    targets: Sequence[Dict[str, Tensor]],
    batch_size: int,
    text_valid: Optional[Tensor] = None,
) -> None:
    """Raise ValueError naming the image and key at fault when a target dict is malformed.

    Shape and dtype checks are free; the label checks (range and membership of each label in its
    image's vocabulary) read values, so they only run when ``text_valid`` (B, T) is given.
    """
    if len(targets) != batch_size:
        raise ValueError(f"got {len(targets)} target dicts for a batch of {batch_size} images")
    for i, t in enumerate(targets):
        missing = [k for k in TARGET_KEYS if k not in t]
        if missing:
            raise ValueError(f"targets[{i}] lacks key(s) {missing}; expected {list(TARGET_KEYS)}")
        labels = t["labels"]
        if labels.dim() != 1 or labels.dtype != torch.int64:
            raise ValueError(
                f"targets[{i}]['labels'] must be int64 (K,), "
                f"got {labels.dtype} {tuple(labels.shape)}"
            )
        k = labels.shape[0]
        _check_shape(t, i, "boxes", (k, 4))
        _check_shape(t, i, "has_mask", (k,), torch.bool)
        _check_shape(t, i, "has_box", (k,), torch.bool)
        if t["masks"].dim() != 3 or t["masks"].shape[0] != k:
            raise ValueError(
                f"targets[{i}]['masks'] must be (K={k}, H, W), got {tuple(t['masks'].shape)}"
            )
        if text_valid is not None and k > 0:
            _check_labels(labels, text_valid[i], i)


def _check_shape(t: Dict[str, Tensor], i: int, key: str, shape: tuple, dtype=None) -> None:
    if tuple(t[key].shape) != shape or (dtype is not None and t[key].dtype != dtype):
        want = f"{dtype} " if dtype is not None else ""
        raise ValueError(
            f"targets[{i}]['{key}'] must be {want}{shape}, got {t[key].dtype} {tuple(t[key].shape)}"
        )


def _check_labels(labels: Tensor, valid_row: Tensor, i: int) -> None:
    num_texts = valid_row.shape[0]
    if int(labels.min()) < 0 or int(labels.max()) >= num_texts:
        raise ValueError(
            f"targets[{i}]['labels'] must lie in [0, {num_texts}), got {labels.tolist()}"
        )
    if not bool(valid_row[labels.to(valid_row.device)].all()):
        raise ValueError(
            f"targets[{i}]['labels'] points at texts outside image {i}'s vocabulary "
            f"(text_valid[{i}] is False there): {labels.tolist()}"
        )
