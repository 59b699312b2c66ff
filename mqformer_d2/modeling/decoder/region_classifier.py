"""A second class head that names regions from the stride-4 mask features pooled under them.

The query's own class head learns names only through the queries Hungarian matching assigns to
each target, one or two per target and layer, and only once the queries find the objects. This
head classifies every ground-truth object of the batch from the pixel features under it, from the
first step (a dense naming signal into the pixel decoder, the backbone and the text side), as
open-vocabulary segmenters classify mask-pooled features (FC-CLIP, ODISE). At inference the same
head reads each query's predicted region and its probabilities are fused with the query's own
(FC-CLIP's geometric ensemble).

Poolings:
    "mask_mean": the mean of the mask features under the (soft) mask (FC-CLIP's mask pooling).
    "box_grid": a RoIAlign S x S grid of the mask features under the box (Mask R-CNN's read-out),
        which keeps the outline that a mean throws away.
    "mask_grid": S x S grids under the mask's tight box of the mask features times the mask and of
        the mask itself: what the object looks like, without the background in its box, and its
        silhouette (the cue that Mask Scoring R-CNN's head reads from the predicted mask).
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mqformer_d2.layers import MLP, mask_boxes_in_image

from ..text_batch import TextBatch
from .box_readout import box_grid_features
from .prediction_heads import TextSimilarityClassifier

POOLINGS = ("mask_mean", "box_grid", "mask_grid")
# Mask features are at stride 4 of the padded image: ground-truth masks are averaged over 4x4 cells.
_MASK_STRIDE = 4
# Probabilities are clamped away from 0 and 1 before the fused logit is taken.
_EPS = 1e-6


class RegionClassifier(nn.Module):
    """Pooled mask features -> MLP -> text-similarity logits; a loss on the ground truth and a
    fusion with the queries' logits at inference.

    Args:
        dim: width C of the mask features, queries and text embeddings.
        pooling: one of POOLINGS.
        grid_size: S of "box_grid".
        loss_weight: weight of `loss_region_ce` (cross-entropy over each image's texts).
        test_weight: alpha of the fusion p = p_query^(1 - alpha) * p_region^alpha; 0 = the query's
            own probabilities (the head then only trains the features).
    """

    def __init__(self, *, dim: int, pooling: str, grid_size: int, loss_weight: float, test_weight: float):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"MODEL.MQFORMER.REGION_CLASSIFIER.POOLING: {pooling!r} is not one of {POOLINGS}")
        if not 0.0 <= test_weight <= 1.0:
            raise ValueError(f"MODEL.MQFORMER.REGION_CLASSIFIER.TEST_WEIGHT must lie in [0, 1], got {test_weight}")
        self.pooling = pooling
        self.grid_size = grid_size
        self.loss_weight = loss_weight
        self.test_weight = test_weight
        in_dim = {"mask_mean": dim, "box_grid": dim * grid_size**2, "mask_grid": (dim + 1) * grid_size**2}[pooling]
        self.embed = MLP(in_dim, dim, dim, 2)
        self.classifier = TextSimilarityClassifier(dim)

    def region_logits(self, mask_features: Tensor, mask_valid_ratio: Tensor, boxes: Tensor, masks: Tensor,
                      text_embeddings: Tensor) -> Tensor:
        """Logits (B, N, T) of N regions per image against the T texts.

        Args:
            mask_features: (B, C, Hm, Wm) stride-4 pixel embeddings.
            mask_valid_ratio: (B, 2) (w, h) unpadded fraction of the mask features.
            boxes: (B, N, 4) normalised cxcywh relative to the unpadded image ("box_grid",
                "mask_grid": the masks' tight boxes).
            masks: (B, N, Hm, Wm) soft masks in [0, 1] ("mask_mean", "mask_grid"; may be None for
                "box_grid").
            text_embeddings: (T, C).
        """
        if self.pooling == "box_grid":
            pooled = box_grid_features(mask_features, boxes, mask_valid_ratio, self.grid_size)
        elif self.pooling == "mask_grid":
            pooled = self._mask_grid(mask_features, mask_valid_ratio, boxes, masks)
        else:
            weights = masks / masks.flatten(2).sum(-1).clamp(min=_EPS)[..., None, None]
            pooled = torch.einsum("bnhw,bchw->bnc", weights.to(mask_features.dtype), mask_features)
        return self.classifier(self.embed(pooled), text_embeddings)

    def _mask_grid(self, mask_features: Tensor, mask_valid_ratio: Tensor, boxes: Tensor, masks: Tensor) -> Tensor:
        """(B, N, (C + 1) * S * S): the grids of features x mask and of the mask under each box.
        Each region's mask is read as a one-channel image of its own, so memory stays at the
        masks' (B, N, Hm, Wm) instead of a masked copy of the features per region."""
        batch, count = boxes.shape[:2]
        cells = self.grid_size * self.grid_size
        features = box_grid_features(mask_features, boxes, mask_valid_ratio, self.grid_size)
        features = features.view(batch, count, -1, cells)
        mask_grid = box_grid_features(
            masks.flatten(0, 1)[:, None].to(mask_features.dtype), boxes.flatten(0, 1)[:, None],
            mask_valid_ratio.repeat_interleave(count, 0), self.grid_size,
        ).view(batch, count, 1, cells)
        return torch.cat([features * mask_grid, mask_grid], 2).flatten(2)

    def loss(self, mask_features: Tensor, mask_valid_ratio: Tensor, targets: Sequence[Dict[str, Tensor]],
             text: TextBatch) -> Dict[str, Tensor]:
        """{"loss_region_ce": weighted cross-entropy} of every target with a region (a box for
        "box_grid", a mask for the mask poolings) against its image's texts, averaged over targets."""
        boxes, masks, labels, present = self._target_regions(targets, mask_features.shape[-2:])
        if not bool(present.any()):
            return {"loss_region_ce": mask_features.sum() * 0.0}
        logits = self.region_logits(mask_features, mask_valid_ratio, boxes, masks, text.embeddings)
        logits = logits.float().masked_fill(~text.valid[:, None, :], float("-inf"))
        loss = F.cross_entropy(logits[present], labels[present])
        return {"loss_region_ce": self.loss_weight * loss}

    def _target_regions(self, targets: Sequence[Dict[str, Tensor]], mask_size: Tuple[int, int]):
        """Targets padded to the batch's largest count K: boxes (B, K, 4), soft masks (B, K, Hm, Wm)
        at stride 4 (None for "box_grid"; the boxes are the masks' tight boxes), labels (B, K) int64 into the union texts and present
        (B, K) bool (a real target with the region this pooling reads)."""
        count = max(len(t["labels"]) for t in targets)
        device = targets[0]["labels"].device
        boxes = torch.zeros(len(targets), count, 4, device=device)
        labels = torch.zeros(len(targets), count, dtype=torch.int64, device=device)
        present = torch.zeros(len(targets), count, dtype=torch.bool, device=device)
        masks = torch.zeros(len(targets), count, *mask_size, device=device) if self.pooling != "box_grid" else None
        for index, target in enumerate(targets):
            k = len(target["labels"])
            boxes[index, :k] = target["boxes"]
            labels[index, :k] = target["labels"]
            if masks is None:
                # Stuff has no box target, but its box (around its mask) is still its region.
                present[index, :k] = target["has_box"] | target["has_mask"]
            else:
                present[index, :k] = target["has_mask"]
                if k:
                    masks[index, :k] = F.adaptive_avg_pool2d(target["masks"][None].float(), mask_size)[0]
        return boxes, masks, labels, present

    def fuse(self, outputs: Dict, mask_features: Tensor, mask_valid_ratio: Tensor, text: TextBatch) -> Tensor:
        """The final queries' logits (B, Q, T) fused with this head's reading of their predicted
        regions (pred_boxes; sigmoid of pred_masks, under their tight boxes for "mask_grid", the
        predicted box where a mask is empty): logit(p_query^(1 - a) * p_region^a), with
        p_region the softmax over each image's own texts (other columns come out at -inf). An image
        with a single text keeps the query logits: a softmax over one text says nothing."""
        boxes, masks = outputs["pred_boxes"], None
        if self.pooling != "box_grid":
            masks = outputs["pred_masks"].sigmoid()
        if self.pooling == "mask_grid":
            tight, non_empty = mask_boxes_in_image(outputs["pred_masks"], mask_valid_ratio)
            boxes = torch.where(non_empty[..., None], tight.to(boxes.dtype), boxes)
        region_logits = self.region_logits(mask_features, mask_valid_ratio, boxes, masks, text.embeddings).float()
        log_region = torch.log_softmax(region_logits.masked_fill(~text.valid[:, None, :], float("-inf")), -1)
        log_query = F.logsigmoid(outputs["pred_logits"].float())
        fused = ((1.0 - self.test_weight) * log_query + self.test_weight * log_region).exp()
        fused = torch.logit(fused.clamp(_EPS, 1.0 - _EPS)).masked_fill(~text.valid[:, None, :], float("-inf"))
        several_texts = (text.valid.sum(1) > 1)[:, None, None]
        return torch.where(several_texts, fused.to(outputs["pred_logits"].dtype), outputs["pred_logits"])


def build_region_classifier(cfg) -> Optional[RegionClassifier]:
    """The region classifier of MODEL.MQFORMER.REGION_CLASSIFIER, or None when POOLING is ""."""
    node = cfg.MODEL.MQFORMER.REGION_CLASSIFIER
    if not node.POOLING:
        return None
    return RegionClassifier(dim=cfg.MODEL.MQFORMER.HIDDEN_DIM, pooling=node.POOLING, grid_size=node.GRID_SIZE,
                            loss_weight=node.LOSS_WEIGHT, test_weight=node.TEST_WEIGHT)

