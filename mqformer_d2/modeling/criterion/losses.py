"""Loss terms over matched (prediction, target) pairs, and the point sampling the matcher shares.

Every function here works on one set of *matched* (prediction, target) pairs and returns a sum,
so the caller decides the normaliser (number of targets, averaged over workers). All terms are
computed in float32 even under autocast: the focal and dice terms divide small numbers. Targets
are `loss_targets.prepare_targets`'s: checked, and on the predictions' device.
"""

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.projects.point_rend.point_features import (
    get_uncertain_point_coords_with_randomness,
    point_sample,
)
from torch import Tensor
from torchvision.ops import box_convert, generalized_box_iou_loss, sigmoid_focal_loss

# (query indices, target indices) of one image, both int64 of the same length.
MatchIndices = Tuple[Tensor, Tensor]


def sample_points(maps: Tensor, coords: Tensor) -> Tensor:
    """Bilinear values of maps (N, C, H, W) at coords (N, P, 2) in [0, 1] x [0, 1] -> (N, C, P).

    Border padding, not grid_sample's default zeros: with zeros, points in the outer half-pixel
    ring of the coarse logits would blend towards logit 0 (p = 0.5) while the finer target does
    not, so a perfect mask would still be penalised along the canvas edge.
    """
    return point_sample(maps, coords, align_corners=False, padding_mode="border")


def class_focal_loss(
    logits: Tensor,
    text_valid: Tensor,
    indices: List[MatchIndices],
    targets: Sequence[Dict[str, Tensor]],
    *,
    alpha: float,
    gamma: float,
) -> Tensor:
    """Sum of the sigmoid focal loss over every (query, valid text) entry of the batch.

    logits (B, Q, T) text-similarity logits; text_valid (B, T) bool. The one-hot target is 1 at
    (query, label column) for each matched pair and 0 elsewhere (unmatched queries are pure
    negatives). Columns outside an image's vocabulary are multiplied out: they belong to another
    image of the batch, so they are neither positives nor negatives here.
    """
    logits = logits.float()
    onehot = torch.zeros_like(logits)
    dev = logits.device
    for b, (q, k) in enumerate(indices):
        onehot[b, q.to(dev), targets[b]["labels"][k.to(dev)]] = 1.0
    loss = sigmoid_focal_loss(logits, onehot, alpha=alpha, gamma=gamma, reduction="none")
    return (loss * text_valid[:, None, :].to(loss.dtype)).sum()


def _gather_matched(
    preds: Tensor, indices: List[MatchIndices], targets, key: str, flag: str
) -> Tuple[Tensor, Tensor]:
    """Stack the matched predictions and targets[key] of the pairs whose target has ``flag``.

    preds (B, Q, ...) -> (N, ...) predictions and (N, ...) targets over the whole batch.
    """
    dev = preds.device
    src, tgt = [], []
    for b, (q, k) in enumerate(indices):
        q, k = q.to(dev), k.to(dev)  # the matcher's indices are CPU tensors
        keep = targets[b][flag][k]
        src.append(preds[b][q[keep]])
        tgt.append(targets[b][key][k[keep]])
    return torch.cat(src), torch.cat(tgt)


def box_losses(pred_boxes: Tensor, indices: List[MatchIndices], targets) -> Tuple[Tensor, Tensor]:
    """Summed L1 (on normalised cxcywh) and GIoU losses over matched pairs with ``has_box``.

    pred_boxes (B, Q, 4) normalised cxcywh. Returns two scalars; both are ``0 * pred_boxes.sum()``
    when no pair has a box, so the graph (and DDP's gradient bookkeeping) stays connected.
    """
    src, tgt = _gather_matched(pred_boxes, indices, targets, "boxes", "has_box")
    if src.shape[0] == 0:
        zero = pred_boxes.sum() * 0.0
        return zero, zero
    src, tgt = src.float(), tgt.float()
    l1 = F.l1_loss(src, tgt, reduction="sum")
    giou = generalized_box_iou_loss(
        box_convert(src, "cxcywh", "xyxy"), box_convert(tgt, "cxcywh", "xyxy"), reduction="sum"
    )
    return l1, giou


def dice_loss(point_logits: Tensor, point_labels: Tensor) -> Tensor:
    """Summed dice loss over N masks; point_logits, point_labels (N, P).

    The +1 smoothing keeps an empty target with an empty prediction at loss 0 instead of 0 / 0.
    """
    probs = point_logits.sigmoid()
    inter = (probs * point_labels).sum(-1)
    total = probs.sum(-1) + point_labels.sum(-1)
    return (1.0 - (2.0 * inter + 1.0) / (total + 1.0)).sum()


def mask_losses(
    pred_masks: Tensor,
    indices: List[MatchIndices],
    targets,
    *,
    num_points: int,
    oversample_ratio: float,
    importance_sample_ratio: float,
) -> Tuple[Tensor, Tensor]:
    """Summed sigmoid-BCE (mean over points) and dice losses over matched pairs with ``has_mask``.

    pred_masks (B, Q, Hm, Wm) logits; target masks (K, Hpad, Wpad) at any multiple of that size:
    both are read at the same normalised point coordinates, so only the aspect must agree. Memory
    is O(N x num_points x oversample_ratio) instead of O(N x Hpad x Wpad) per loss evaluation: the
    points are PointRend's importance sampling (mostly where the prediction is most uncertain).
    """
    src, tgt = _gather_matched(pred_masks, indices, targets, "masks", "has_mask")
    if src.shape[0] == 0:
        zero = pred_masks.sum() * 0.0
        return zero, zero
    src = src[:, None].float()  # (N, 1, Hm, Wm)
    tgt = tgt[:, None].to(src.dtype)  # (N, 1, Hpad, Wpad)
    with torch.no_grad():
        # Uncertainty = -|logit|: points near the decision boundary are the informative ones.
        coords = get_uncertain_point_coords_with_randomness(
            src, lambda x: -x.abs(), num_points, oversample_ratio, importance_sample_ratio
        )
        point_labels = sample_points(tgt, coords).squeeze(1)  # (N, P)
    point_logits = sample_points(src, coords).squeeze(1)  # (N, P)
    bce = F.binary_cross_entropy_with_logits(point_logits, point_labels, reduction="none")
    return bce.mean(1).sum(), dice_loss(point_logits, point_labels)
