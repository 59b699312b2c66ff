"""Hungarian matching of all queries (learnable and conditional together) to the unified targets.

MQ-Former matches the union of both query sets at once (paper section 3.3): no query is reserved
for things, stuff or a task, so which query type wins a target is an outcome of training.
"""

from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn
from torchvision.ops import box_convert, generalized_box_iou, sigmoid_focal_loss

from .loss_weights import LossWeights
from .losses import MatchIndices, sample_points


class HungarianMatcher(nn.Module):
    """One-to-one assignment of predictions to targets, per image, minimising a weighted cost.

    Cost of query q for target k (each term weighted as its loss, by ``weights``):

    * class: focal cost at k's label column, ``FL(logit, 1) - FL(logit, 0)`` (how much cheaper it
      is for q to call this text positive than negative), on the text-similarity logits;
    * box (only when ``has_box[k]``, else 0): L1 on normalised cxcywh, and ``-GIoU``;
    * mask (only when ``has_mask[k]``, else 0): mean sigmoid-BCE and dice over ``num_points``
      uniformly random points, the same points for every prediction and target of the batch.

    Because the points are shared by the whole batch, matching a batch gives exactly the result of
    matching each image alone under the same random state (tests/modeling/criterion/test_matcher.py).

    Outputs (``forward``'s first argument), B images, Q queries, T texts in the batch union:
        ``pred_logits`` (B, Q, T): query-vs-text logits;
        ``pred_boxes`` (B, Q, 4): normalised cxcywh after sigmoid; optional (no box cost if absent);
        ``pred_masks`` (B, Q, Hm, Wm): mask logits; optional (no mask cost if absent).
    Targets: a list of B dicts with ``labels`` int64 (K,), ``boxes`` (K, 4) normalised cxcywh,
    ``masks`` bool (K, Hpad, Wpad), ``has_mask`` bool (K,), ``has_box`` bool (K,), on the
    predictions' device: ``loss_targets.prepare_targets``'s, which the criterion makes once per
    batch for all the prediction sets it matches.

    Returns a list of B pairs ``(query_idx, target_idx)``, int64 CPU tensors of length
    ``min(Q, K_b)``, ``query_idx`` ascending. An image with no target gives two empty tensors.
    """

    def __init__(self, *, weights: LossWeights = LossWeights(), num_points: int = 12544):
        """
        Args:
            weights: the criterion's `LossWeights`: the class, L1 box, GIoU box, point-BCE mask and
                point-dice mask costs are weighted like the losses, the class cost uses the same
                focal parameters.
            num_points: points sampled per image for the mask costs (112 x 112 by default).
        """
        super().__init__()
        if num_points <= 0:
            raise ValueError(f"num_points must be positive, got {num_points}")
        self.weights = weights
        self.num_points = num_points

    @torch.no_grad()
    def forward(
        self, outputs: Dict[str, Tensor], targets: Sequence[Dict[str, Tensor]]
    ) -> List[MatchIndices]:
        """Per image ``(query_idx, target_idx)``; see the class docstring for the formats."""
        indices = []
        for b, cost in enumerate(self.cost_matrices(outputs, targets)):
            if not torch.isfinite(cost).all():
                raise ValueError(
                    f"matching cost of image {b} is not finite: outputs['pred_logits'/'pred_boxes'/"
                    "'pred_masks'] contain NaN or inf (training has probably diverged)"
                )
            rows, cols = linear_sum_assignment(cost.numpy())
            indices.append(
                (torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64))
            )
        return indices

    @torch.no_grad()
    def cost_matrices(
        self, outputs: Dict[str, Tensor], targets: Sequence[Dict[str, Tensor]]
    ) -> List[Tensor]:
        """The weighted cost matrix of each image: a list of B float32 CPU tensors (Q, K_b)."""
        logits = outputs["pred_logits"]
        coords = None
        if "pred_masks" in outputs:
            # One draw for the whole batch so the result does not depend on how it is batched.
            coords = torch.rand(1, self.num_points, 2, device=logits.device)
        costs = []
        for b, tgt in enumerate(targets):
            cost = self.class_cost(logits[b], tgt["labels"])
            if "pred_boxes" in outputs:
                cost = cost + self.box_cost(outputs["pred_boxes"][b], tgt["boxes"], tgt["has_box"])
            if coords is not None:
                cost = cost + self.mask_cost(
                    outputs["pred_masks"][b], tgt["masks"], tgt["has_mask"], coords
                )
            costs.append(cost.float().cpu())
        return costs

    def class_cost(self, logits: Tensor, labels: Tensor) -> Tensor:
        """logits (Q, T), labels (K,) -> weighted focal class cost (Q, K)."""
        x = logits[:, labels].float()  # (Q, K): only the target columns matter
        kw = dict(alpha=self.weights.focal_alpha, gamma=self.weights.focal_gamma, reduction="none")
        pos = sigmoid_focal_loss(x, torch.ones_like(x), **kw)
        neg = sigmoid_focal_loss(x, torch.zeros_like(x), **kw)
        return self.weights.class_weight * (pos - neg)

    def box_cost(self, pred_boxes: Tensor, boxes: Tensor, has_box: Tensor) -> Tensor:
        """pred_boxes (Q, 4), boxes (K, 4) cxcywh, has_box (K,) -> weighted box cost (Q, K).

        Columns of targets without a box stay 0; their (possibly meaningless) boxes are never read,
        so a degenerate stuff box cannot make the GIoU NaN.
        """
        cost = pred_boxes.new_zeros(pred_boxes.shape[0], boxes.shape[0], dtype=torch.float32)
        if not bool(has_box.any()):
            return cost
        src, tgt = pred_boxes.float(), boxes[has_box].float()
        l1 = torch.cdist(src, tgt, p=1)
        giou = generalized_box_iou(
            box_convert(src, "cxcywh", "xyxy"), box_convert(tgt, "cxcywh", "xyxy")
        )
        cost[:, has_box] = self.weights.bbox_weight * l1 - self.weights.giou_weight * giou
        return cost

    def mask_cost(
        self, pred_masks: Tensor, masks: Tensor, has_mask: Tensor, coords: Tensor
    ) -> Tensor:
        """Weighted mask cost (Q, K); 0 in the columns of targets without a mask.

        pred_masks (Q, Hm, Wm) logits, masks (K, Hpad, Wpad) bool, has_mask (K,) bool,
        coords (1, P, 2) point coordinates in [0, 1].
        """
        cost = pred_masks.new_zeros(pred_masks.shape[0], masks.shape[0], dtype=torch.float32)
        if not bool(has_mask.any()):
            return cost
        # Images are "batch 1" with Q (resp. K) channels: one grid_sample per side.
        x = sample_points(pred_masks[None].float(), coords)[0]  # (Q, P)
        t = sample_points(masks[has_mask][None].float(), coords)[0]  # (K', P)
        bce, dice = pairwise_bce(x, t), pairwise_dice(x, t)
        cost[:, has_mask] = self.weights.mask_weight * bce + self.weights.dice_weight * dice
        return cost


def pairwise_bce(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean over points of BCE(logits[q], labels[k]) for every pair: (Q, P), (K, P) -> (Q, K).

    BCE(x, t) = softplus(x) - x * t, so the pairwise mean is a row sum minus one matmul.
    """
    return (F.softplus(logits).sum(-1, keepdim=True) - logits @ labels.T) / logits.shape[1]


def pairwise_dice(logits: Tensor, labels: Tensor) -> Tensor:
    """Dice loss of every (prediction, target) pair: (Q, P) logits, (K, P) labels -> (Q, K)."""
    probs = logits.sigmoid()
    inter = probs @ labels.T
    total = probs.sum(-1)[:, None] + labels.sum(-1)[None, :]
    return 1.0 - (2.0 * inter + 1.0) / (total + 1.0)
