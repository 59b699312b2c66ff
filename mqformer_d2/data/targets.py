"""Unified annotations (docs/data_format.md) -> transformed masks, boxes and texts -> `Instances`."""
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch
from detectron2.data import transforms as T
from detectron2.structures import BitMasks, Boxes, BoxMode, Instances

from .masks import decode_segmentation, mask_to_box


@dataclass
class Target:
    """One transformed (text, box, mask) triplet. mask is None for box-only targets."""

    text: str
    box: np.ndarray  # (4,) XYXY absolute, in the transformed image
    mask: Optional[np.ndarray]  # (H, W) bool, or None
    has_box: bool


def transform_mask(mask: np.ndarray, transforms: T.TransformList) -> np.ndarray:
    """Apply the image's transforms to a 0/1 mask. Padding fills segmentations with 255, so only
    pixels that stay exactly 1 belong to the object."""
    return transforms.apply_segmentation(mask.astype(np.uint8)) == 1


def annotation_to_target(annotation: dict, text: str, transforms: T.TransformList,
                         original_size, image_size, min_box_side: float = 1.0) -> Optional[Target]:
    """Transform one unified annotation. Returns None when nothing of it is left in the image."""
    height, width = original_size
    has_box = bool(annotation.get("has_box", True))
    if "segmentation" in annotation:
        mask = transform_mask(decode_segmentation(annotation["segmentation"], height, width), transforms)
        box = mask_to_box(mask)
        return None if box is None else Target(text, box, mask, has_box)
    if "bbox" not in annotation:
        raise KeyError("an annotation has neither 'segmentation' nor 'bbox'")
    box = BoxMode.convert(list(annotation["bbox"]), annotation["bbox_mode"], BoxMode.XYXY_ABS)
    box = transforms.apply_box(np.array([box], dtype=np.float32))[0]
    box = np.clip(box, 0, [image_size[1], image_size[0]] * 2).astype(np.float32)
    if min(box[2] - box[0], box[3] - box[1]) < min_box_side:
        return None
    return Target(text, box, None, has_box)


def semantic_targets(sem_seg: np.ndarray, text_prompts, ignore_label: int) -> List[Target]:
    """One target per class present in a (transformed) semantic label map; stuff-like regions
    get no box loss (has_box=False)."""
    targets = []
    for class_id in np.unique(sem_seg):
        if class_id == ignore_label:
            continue
        if not 0 <= class_id < len(text_prompts):
            raise ValueError(f"semantic label {class_id} is outside text_prompts (length {len(text_prompts)})")
        mask = sem_seg == class_id
        targets.append(Target(text_prompts[class_id], mask_to_box(mask), mask, has_box=False))
    return targets


def targets_to_instances(targets: List[Target], vocabulary: List[str], image_size) -> Instances:
    """Stack targets into `Instances` with gt_boxes, gt_masks, gt_text_ids, gt_has_mask, gt_has_box."""
    height, width = image_size
    text_index = {text: i for i, text in enumerate(vocabulary)}
    instances = Instances(image_size)
    boxes = np.stack([t.box for t in targets]) if targets else np.zeros((0, 4), np.float32)
    instances.gt_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32))
    masks = [t.mask if t.mask is not None else np.zeros((height, width), bool) for t in targets]
    mask_tensor = torch.as_tensor(np.stack(masks)) if masks else torch.zeros(0, height, width, dtype=torch.bool)
    instances.gt_masks = BitMasks(mask_tensor)
    instances.gt_text_ids = torch.tensor([text_index[t.text] for t in targets], dtype=torch.int64)
    instances.gt_has_mask = torch.tensor([t.mask is not None for t in targets], dtype=torch.bool)
    instances.gt_has_box = torch.tensor([t.has_box for t in targets], dtype=torch.bool)
    return instances


def count_horizontal_flips(transforms: T.TransformList) -> int:
    return sum(isinstance(t, T.HFlipTransform) for t in transforms.transforms)

