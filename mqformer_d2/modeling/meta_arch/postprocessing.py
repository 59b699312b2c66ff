"""Inference outputs of one image in Detectron2's formats, at the original image resolution.

Every function takes the image's predictions restricted to its own vocabulary:
    logits (Q, T) class logits, mask_logits (Q, Hm, Wm) at stride 4 of the padded batch,
    boxes (Q, 4) cxcywh normalised by the unpadded image size;
and a `ResizeSpec` saying how to bring masks to the output size. Class indices in the outputs
index the image's vocabulary.
"""
from dataclasses import dataclass
from typing import Dict, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.modeling.postprocessing import sem_seg_postprocess
from detectron2.structures import Boxes, Instances
from torch import Tensor

from ..box_utils import cxcywh_to_xyxy


@dataclass
class ResizeSpec:
    """padded_size: (Hpad, Wpad) of the batch; image_size: (h, w) unpadded; output_size: (H, W)."""

    padded_size: Tuple[int, int]
    image_size: Tuple[int, int]
    output_size: Tuple[int, int]

    def resize(self, maps: Tensor) -> Tensor:
        """(N, Hm, Wm) stride-4 maps -> (N, H, W) at the output size (bilinear)."""
        if maps.shape[0] == 0:
            return maps.new_zeros(0, *self.output_size)
        upsampled = F.interpolate(maps[None], size=self.padded_size, mode="bilinear", align_corners=False)[0]
        return sem_seg_postprocess(upsampled, self.image_size, *self.output_size)


def instance_inference(logits: Tensor, mask_logits: Tensor, boxes: Tensor, resize: ResizeSpec,
                       max_detections: int, score_threshold: float) -> Instances:
    """Top (query, text) pairs as instances; score = class probability x mean mask probability.

    Returns Instances of the output size with pred_masks (N, H, W) bool, pred_boxes, scores,
    pred_classes; N may be 0.
    """
    num_queries, num_texts = logits.shape
    probabilities = logits.sigmoid().flatten()
    k = min(max_detections, probabilities.numel())
    class_scores, flat_index = probabilities.topk(k)
    query = torch.div(flat_index, num_texts, rounding_mode="floor")
    labels = flat_index % num_texts
    masks = resize.resize(mask_logits[query])
    binary = masks > 0
    mask_probability = masks.sigmoid()
    # Mask quality: mean probability inside the predicted mask (Mask2Former's rescoring).
    mask_scores = (mask_probability * binary).flatten(1).sum(1) / binary.flatten(1).sum(1).clamp(min=1)
    scores = class_scores * mask_scores
    keep = scores > score_threshold
    height, width = resize.output_size
    scale = torch.tensor([width, height, width, height], dtype=boxes.dtype, device=boxes.device)
    result = Instances(resize.output_size)
    result.pred_masks = binary[keep]
    result.pred_boxes = Boxes(cxcywh_to_xyxy(boxes[query][keep]) * scale)
    result.pred_boxes.clip(resize.output_size)
    result.scores = scores[keep]
    result.pred_classes = labels[keep]
    return result


def semantic_inference(logits: Tensor, mask_logits: Tensor, resize: ResizeSpec) -> Tensor:
    """(T, H, W) per-text scores: sum over queries of class probability x mask probability."""
    scores = torch.einsum("qt,qhw->thw", logits.sigmoid(), mask_logits.sigmoid())
    return resize.resize(scores)


def panoptic_inference(logits: Tensor, mask_logits: Tensor, resize: ResizeSpec, is_thing: Sequence[bool],
                       object_threshold: float, overlap_threshold: float) -> Tuple[Tensor, list]:
    """Non-overlapping segments: each pixel goes to the query with the highest score x probability.

    Args:
        is_thing: per text of the vocabulary; segments of a non-thing text are merged.

    Returns:
        (H, W) int32 segment ids (0 = void) and Detectron2's segments_info dicts (id,
        category_id, isthing, score).
    """
    scores, labels = logits.sigmoid().max(-1)
    keep = scores > object_threshold
    panoptic = torch.zeros(resize.output_size, dtype=torch.int32, device=logits.device)
    segments = []
    if not bool(keep.any()):
        return panoptic, segments
    scores, labels = scores[keep], labels[keep]
    probabilities = resize.resize(mask_logits[keep]).sigmoid()
    owner = (scores[:, None, None] * probabilities).argmax(0)
    stuff_segment: Dict[int, int] = {}
    for k in range(len(scores)):
        label = int(labels[k])
        # Mask2Former's rule: keep a query when it owns (argmax) at least `overlap_threshold` of
        # its own mask's area, and paint the pixels it both owns and covers.
        owned, original = owner == k, probabilities[k] >= 0.5
        region = owned & original
        owned_area, original_area = int(owned.sum()), int(original.sum())
        if original_area == 0 or not bool(region.any()) or owned_area / original_area < overlap_threshold:
            continue
        thing = bool(is_thing[label])
        if not thing and label in stuff_segment:
            panoptic[region] = stuff_segment[label]
            continue
        segment_id = len(segments) + 1
        panoptic[region] = segment_id
        segments.append({"id": segment_id, "category_id": label, "isthing": thing, "score": float(scores[k])})
        if not thing:
            stuff_segment[label] = segment_id
    return panoptic, segments


def referring_inference(logits: Tensor, mask_logits: Tensor, texts: Sequence[str], resize: ResizeSpec) -> Dict:
    """One mask per expression: the mask of the query scoring highest for it.

    Returns {"texts": list of T str, "masks": (T, H, W) bool, "scores": (T,)}.
    """
    if logits.shape[1] == 0:
        return {"texts": [], "masks": torch.zeros(0, *resize.output_size, dtype=torch.bool,
                                                     device=logits.device), "scores": logits.new_zeros(0)}
    scores, query = logits.sigmoid().max(0)
    masks = resize.resize(mask_logits[query]) > 0
    return {"texts": list(texts), "masks": masks, "scores": scores}
