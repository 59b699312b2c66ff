"""Inference outputs of one image in Detectron2's formats, at the original image resolution.

Every function takes the image's predictions restricted to its own vocabulary:
    logits (Q, T) class logits, mask_logits (Q, Hm, Wm) at stride 4 of the padded batch,
    boxes (Q, 4) cxcywh normalised by the unpadded image size;
and a `ResizeSpec` saying how to bring masks to the output size. Class indices in the outputs
index the image's vocabulary.

Memory grows with the outputs, not with the candidates x output pixels: candidates are selected
on their class scores first, each query's mask is upsampled once (a query scoring for several
texts is shared), in chunks of about `CHUNK_PIXELS` output pixels, in the masks' own dtype, and
only the kept masks are stored at full resolution.
"""
from dataclasses import dataclass
from typing import Dict, Iterator, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.modeling.postprocessing import sem_seg_postprocess
from detectron2.structures import Boxes, Instances
from torch import Tensor

from mqformer_d2.layers import cxcywh_to_xyxy

# What each task outputs (keys of the result dict).
TASK_OUTPUTS = {
    "instance": ("instances",),
    "detection": ("instances",),
    "semantic": ("sem_seg",),
    "foreground": ("sem_seg",),
    "panoptic": ("panoptic_seg",),
    "referring": ("referring",),
    "all": ("instances", "sem_seg", "panoptic_seg", "referring"),
}
# Forms of the semantic output: the (T, H, W) scores, or per-pixel labels and scores.
SEMANTIC_OUTPUTS = ("scores", "labels")

# Output pixels upsampled at once (a chunk of masks): bounds the temporary full-resolution maps to
# a few times CHUNK_PIXELS elements, e.g. one mask at a time for a 6000x4000 image.
CHUNK_PIXELS = 1 << 24


@dataclass(frozen=True)
class PostprocessSettings:
    """The thresholds of the task outputs (MODEL.MQFORMER.TEST.*, TEST.DETECTIONS_PER_IMAGE):
    see `instance_inference`, `panoptic_inference` and `sharpened_probabilities`."""

    max_detections: int = 100
    instance_score_threshold: float = 0.0
    object_mask_threshold: float = 0.25
    overlap_threshold: float = 0.8
    class_temperature: float = 0.0


@dataclass
class ResizeSpec:
    """padded_size: (Hpad, Wpad) of the batch; image_size: (h, w) unpadded; output_size: (H, W)."""

    padded_size: Tuple[int, int]
    image_size: Tuple[int, int]
    output_size: Tuple[int, int]

    def chunks(self, maps: Tensor) -> Iterator[Tuple[int, Tensor]]:
        """(N, Hm, Wm) stride-4 maps -> (start, (n, H, W) maps[start:start + n] at the output size),
        bilinear, in the maps' dtype, a chunk of about CHUNK_PIXELS output pixels at a time."""
        height, width = self.output_size
        step = max(1, CHUNK_PIXELS // max(1, height * width))
        for start in range(0, maps.shape[0], step):
            chunk = F.interpolate(maps[None, start:start + step], size=self.padded_size, mode="bilinear",
                                  align_corners=False)[0]
            yield start, sem_seg_postprocess(chunk, self.image_size, height, width)

    def resize(self, maps: Tensor) -> Tensor:
        """(N, Hm, Wm) stride-4 maps -> (N, H, W) at the output size (bilinear)."""
        output = maps.new_empty(maps.shape[0], *self.output_size)
        for start, chunk in self.chunks(maps):
            output[start:start + chunk.shape[0]] = chunk
        return output

    def binary(self, mask_logits: Tensor) -> Tensor:
        """(N, Hm, Wm) mask logits -> (N, H, W) bool masks (logit > 0) at the output size."""
        output = torch.empty(mask_logits.shape[0], *self.output_size, dtype=torch.bool, device=mask_logits.device)
        for start, chunk in self.chunks(mask_logits):
            output[start:start + chunk.shape[0]] = chunk > 0
        return output


def instance_inference(logits: Tensor, mask_logits: Tensor, boxes: Tensor, resize: ResizeSpec,
                       max_detections: int, score_threshold: float) -> Instances:
    """Top (query, text) pairs as instances; score = class probability x mean mask probability.

    Returns Instances of the output size with pred_masks (N, H, W) bool, pred_boxes, scores,
    pred_classes; N may be 0.
    """
    num_queries, num_texts = logits.shape
    probabilities = logits.sigmoid().flatten()
    class_scores, flat_index = probabilities.topk(min(max_detections, probabilities.numel()))
    # The mask score is at most 1: a pair at or below the threshold on its class score is dropped
    # before any mask is upsampled.
    candidate = class_scores > score_threshold
    class_scores, flat_index = class_scores[candidate], flat_index[candidate]
    query = torch.div(flat_index, num_texts, rounding_mode="floor")
    labels = flat_index % num_texts
    queries, pair_query = torch.unique(query, return_inverse=True)
    scores, kept_masks = _rescore_pairs(mask_logits[queries], pair_query, class_scores, resize, score_threshold)
    keep = scores > score_threshold
    height, width = resize.output_size
    scale = torch.tensor([width, height, width, height], dtype=boxes.dtype, device=boxes.device)
    result = Instances(resize.output_size)
    kept_queries = pair_query[keep].tolist()
    result.pred_masks = (torch.stack([kept_masks[q] for q in kept_queries]) if kept_queries else
                         torch.zeros(0, height, width, dtype=torch.bool, device=logits.device))
    result.pred_boxes = Boxes(cxcywh_to_xyxy(boxes[query][keep]) * scale)
    result.pred_boxes.clip(resize.output_size)
    result.scores = scores[keep]
    result.pred_classes = labels[keep]
    return result


def _rescore_pairs(mask_logits: Tensor, pair_query: Tensor, class_scores: Tensor, resize: ResizeSpec,
                   score_threshold: float) -> Tuple[Tensor, Dict[int, Tensor]]:
    """Scores of (query, text) pairs and the full-resolution masks of the queries that keep one.

    Args:
        mask_logits: (U, Hm, Wm) of the distinct candidate queries.
        pair_query: (P,) index into U of each pair; class_scores: (P,) its class probability.

    Returns:
        scores (P,) = class probability x mean mask probability inside the mask (Mask2Former's
        rescoring), and {u: (H, W) bool mask} for every u with a pair scoring above the threshold.
    """
    scores = torch.zeros_like(class_scores)
    kept_masks: Dict[int, Tensor] = {}
    for start, masks in resize.chunks(mask_logits):
        binary = masks > 0
        inside = (masks.sigmoid() * binary).flatten(1).sum(1, dtype=torch.float32)
        mask_scores = inside / binary.flatten(1).sum(1).clamp(min=1)
        in_chunk = (pair_query >= start) & (pair_query < start + masks.shape[0])
        scores[in_chunk] = class_scores[in_chunk] * mask_scores[pair_query[in_chunk] - start].to(scores.dtype)
        for u in pair_query[in_chunk & (scores > score_threshold)].unique().tolist():
            kept_masks[u] = binary[u - start].clone()
    return scores, kept_masks


def sharpened_probabilities(logits: Tensor, temperature: float) -> Tensor:
    """(Q, T) logits -> (Q, T) class probabilities for semantic and panoptic inference.

    temperature 0: the sigmoid probabilities the focal loss trains. temperature > 0: their softmax
    over the texts, softmax(sigmoid(logits) / temperature) (Mask DINO's PANO_TRANSFORM_EVAL with
    T = 0.06): a query that is 0.30 star and 0.25 triangle becomes clearly star, because a
    pixel must take one name while a sigmoid scores every name on its own. With one text there is
    no choice to sharpen (a softmax would make every query certain): the sigmoid stays.
    """
    probabilities = logits.sigmoid()
    if temperature > 0 and probabilities.shape[-1] > 1:
        probabilities = torch.softmax(probabilities / temperature, dim=-1)
    return probabilities


def semantic_inference(logits: Tensor, mask_logits: Tensor, resize: ResizeSpec, temperature: float = 0.0) -> Tensor:
    """(T, H, W) per-text scores: sum over queries of class probability x mask probability
    (class probabilities from `sharpened_probabilities`)."""
    scores = torch.einsum("qt,qhw->thw", sharpened_probabilities(logits, temperature), mask_logits.sigmoid())
    return resize.resize(scores)


def semantic_labels(logits: Tensor, mask_logits: Tensor, resize: ResizeSpec,
                    temperature: float = 0.0) -> Tuple[Tensor, Tensor]:
    """Per pixel, the best text of `semantic_inference`'s (T, H, W) scores and its score, without
    holding that map: texts are scored a chunk at a time (about CHUNK_PIXELS output values), with
    a running maximum. Memory: the outputs plus a few chunks, whatever the number of texts.

    Returns:
        labels (H, W) int64 indices into the texts (the first text on ties, as argmax; -1 when
        there is no text) and scores (H, W) in the masks' dtype.
    """
    probabilities = sharpened_probabilities(logits, temperature)  # over all texts, before chunking
    masks = mask_logits.sigmoid()
    height, width = resize.output_size
    num_texts = probabilities.shape[1]
    step = max(1, CHUNK_PIXELS // max(1, height * width))
    best = masks.new_zeros(resize.output_size)
    labels = torch.full(resize.output_size, -1, dtype=torch.int64, device=masks.device)
    for start in range(0, num_texts, step):
        scores = resize.resize(torch.einsum("qt,qhw->thw", probabilities[:, start:start + step], masks))
        value, index = scores.max(0)
        better = (value > best) | (labels < 0)  # strictly better: earlier texts win ties
        best = torch.where(better, value, best)
        labels = torch.where(better, index + start, labels)
    return labels, best


def panoptic_inference(logits: Tensor, mask_logits: Tensor, resize: ResizeSpec, is_thing: Sequence[bool],
                       object_threshold: float, overlap_threshold: float,
                       temperature: float = 0.0) -> Tuple[Tensor, list]:
    """Non-overlapping segments: each pixel goes to the query with the highest score x probability.

    Args:
        is_thing: per text of the vocabulary; segments of a non-thing text are merged.
        object_threshold: queries whose best sigmoid class probability is at most this are ignored.
        temperature: > 0 takes each kept query's label and score from `sharpened_probabilities`
            (Mask DINO: the threshold still applies to the sigmoid probability).

    Returns:
        (H, W) int32 segment ids (0 = void) and Detectron2's segments_info dicts (id,
        category_id, isthing, score).
    """
    if logits.shape[1] == 0:
        raise ValueError("panoptic segmentation needs at least one prompt: the vocabulary (prompts) is empty")
    scores, labels = logits.sigmoid().max(-1)
    keep = scores > object_threshold
    if temperature > 0:
        scores, labels = sharpened_probabilities(logits, temperature).max(-1)
    panoptic = torch.zeros(resize.output_size, dtype=torch.int32, device=logits.device)
    segments: List[dict] = []
    if not bool(keep.any()):
        return panoptic, segments
    scores, labels, mask_logits = scores[keep], labels[keep], mask_logits[keep]
    owner = _pixel_owners(mask_logits, scores, resize)
    stuff_segment: Dict[int, int] = {}
    for start, masks in resize.chunks(mask_logits):
        for k in range(start, start + masks.shape[0]):
            _paint_segment(panoptic, segments, stuff_segment, owner == k, masks[k - start].sigmoid() >= 0.5,
                           int(labels[k]), float(scores[k]), is_thing, overlap_threshold)
    return panoptic, segments


def _pixel_owners(mask_logits: Tensor, scores: Tensor, resize: ResizeSpec) -> Tensor:
    """(H, W) int64: per pixel, the index k of the highest scores[k] x sigmoid(mask k) (the first
    on ties), computed chunk by chunk with a running maximum."""
    best, owner = None, None
    for start, masks in resize.chunks(mask_logits):
        value, index = (scores[start:start + masks.shape[0], None, None] * masks.sigmoid()).max(0)
        if best is None:
            best, owner = value, index
            continue
        better = value > best
        best = torch.where(better, value, best)
        owner = torch.where(better, index + start, owner)
    return owner


def _paint_segment(panoptic: Tensor, segments: List[dict], stuff_segment: Dict[int, int], owned: Tensor,
                   original: Tensor, label: int, score: float, is_thing: Sequence[bool],
                   overlap_threshold: float) -> None:
    """Mask2Former's rule: keep a query when it owns (argmax) at least `overlap_threshold` of its
    own mask's area (`original`, probability >= 0.5), and paint the pixels it both owns and covers;
    the segments of one stuff text are merged."""
    region = owned & original
    owned_area, original_area = int(owned.sum()), int(original.sum())
    if original_area == 0 or not bool(region.any()) or owned_area / original_area < overlap_threshold:
        return
    thing = bool(is_thing[label])
    if not thing and label in stuff_segment:
        panoptic[region] = stuff_segment[label]
        return
    segment_id = len(segments) + 1
    panoptic[region] = segment_id
    segments.append({"id": segment_id, "category_id": label, "isthing": thing, "score": score})
    if not thing:
        stuff_segment[label] = segment_id


def referring_inference(logits: Tensor, mask_logits: Tensor, texts: Sequence[str], resize: ResizeSpec) -> Dict:
    """One mask per expression: the mask of the query scoring highest for it (each query's mask is
    upsampled once even when it is chosen for several expressions).

    Returns {"texts": list of T str, "masks": (T, H, W) bool, "scores": (T,)}.
    """
    if logits.shape[1] == 0:
        return {"texts": [], "masks": torch.zeros(0, *resize.output_size, dtype=torch.bool,
                                                     device=logits.device), "scores": logits.new_zeros(0)}
    scores, query = logits.sigmoid().max(0)
    queries, text_query = torch.unique(query, return_inverse=True)
    masks = resize.binary(mask_logits[queries])[text_query]
    return {"texts": list(texts), "masks": masks, "scores": scores}


def task_outputs(task: str, logits: Tensor, mask_logits: Tensor, boxes: Tensor, resize: ResizeSpec,
                 settings: PostprocessSettings, vocabulary: Sequence[str], is_thing: Sequence[bool],
                 semantic_output: str = "scores") -> Dict:
    """One image's outputs for `task` (a key of TASK_OUTPUTS): "instances", "sem_seg" (scores) or
    "sem_seg_labels" + "sem_seg_scores" (semantic_output="labels"), "panoptic_seg", "referring".

    Args:
        logits (Q, T), mask_logits (Q, Hm, Wm), boxes (Q, 4): as in the module docstring.
        vocabulary: the T texts; is_thing: per text, False for stuff (panoptic only).
    """
    result = {}
    wanted = TASK_OUTPUTS[task]
    temperature = settings.class_temperature
    if "instances" in wanted:
        result["instances"] = instance_inference(
            logits, mask_logits, boxes, resize, settings.max_detections, settings.instance_score_threshold)
    if "sem_seg" in wanted and semantic_output == "labels":
        result["sem_seg_labels"], result["sem_seg_scores"] = semantic_labels(logits, mask_logits, resize, temperature)
    elif "sem_seg" in wanted:
        result["sem_seg"] = semantic_inference(logits, mask_logits, resize, temperature)
    if "panoptic_seg" in wanted:
        result["panoptic_seg"] = panoptic_inference(
            logits, mask_logits, resize, is_thing, settings.object_mask_threshold, settings.overlap_threshold,
            temperature)
    if "referring" in wanted:
        result["referring"] = referring_inference(logits, mask_logits, vocabulary, resize)
    return result
