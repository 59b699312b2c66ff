"""Two-stage selection of the conditional queries from the encoder's dense proposals.

Every encoder token proposes an object: a class score against the texts, a box (the shared box
head's delta on an anchor centred at the token), and, for the selected ones, a mask. The top-K
tokens by their best score over the image's own texts become the conditional queries ("best_text"
ranking), or, with "per_text" ranking, the tokens that rank highest for each text in turn (every
text's best token first, then every text's second best, ...), so that texts covering most of the
image (stuff) cannot take every query.
"""
import math
from dataclasses import dataclass
from typing import Dict

import torch
from torch import Tensor, nn

from mqformer_d2.layers import SpatialShapes, inverse_sigmoid, level_shapes, mask_boxes_in_image, token_centers

from ..pixel_decoder import PixelDecoderOutput
from ..text_batch import TextBatch
from .prediction_heads import PredictionHeads

# Anchor side of a token on level l: base * 2^l (image fraction), as in Deformable DETR.
_ANCHOR_BASE_SIZE = 0.05
# Anchors whose box pokes beyond [margin, 1 - margin] are not proposed.
_ANCHOR_MARGIN = 0.01
RANKINGS = ("best_text", "per_text")


@dataclass
class ConditionalQueries:
    """The selected proposals. K = number of conditional queries.

    content: (B, K, C) detached token features (the decoder's initial content).
    anchors: (B, K, 4) detached unsigmoided anchor boxes (mask-enhanced when enabled).
    proposals: predictions of the selected tokens for the two-stage loss, with gradients:
        pred_logits (B, K, T), pred_boxes (B, K, 4), pred_masks (B, K, Hm, Wm).
    token_centers: (B, K, 2) (x, y) of the selected tokens' cells, normalised by the unpadded
        image (where the selection looked; training diagnostics read it).
    """

    content: Tensor
    anchors: Tensor
    proposals: Dict[str, Tensor]
    token_centers: Tensor


def token_anchors(spatial_shapes: SpatialShapes, valid_ratios: Tensor, padding_mask: Tensor):
    """One anchor box per encoder token.

    Args:
        spatial_shapes: (H_l, W_l) of each level (`SpatialShapes`); valid_ratios: (B, L, 2) (w, h); padding_mask: (B, S) bool.

    Returns:
        anchors: (B, S, 4) unsigmoided (cx, cy, w, h) relative to the unpadded image;
        usable: (B, S) bool, False for padded tokens and anchors too close to the border.
    """
    centers = token_centers(spatial_shapes, valid_ratios)  # (B, S, 2)
    side = torch.cat([centers.new_full((centers.shape[0], height * width, 1), _ANCHOR_BASE_SIZE * 2.0**level)
                      for level, (height, width) in enumerate(level_shapes(spatial_shapes))], 1)
    anchors = torch.cat([centers, side, side], -1)
    usable = ((anchors > _ANCHOR_MARGIN) & (anchors < 1 - _ANCHOR_MARGIN)).all(-1) & ~padding_mask
    return inverse_sigmoid(anchors), usable


class ConditionalQuerySelector(nn.Module):
    """Scores encoder tokens against the texts and turns the top-K into conditional queries.

    Args:
        dim: token width C. num_queries: K.
        mask_enhanced_anchors: initialise anchors from the boxes of the selected proposals' masks
            (Mask DINO), falling back to the proposal box where a mask is empty.
        ranking: "best_text" or "per_text" (see the module docstring).
    """

    def __init__(self, *, dim: int, num_queries: int, mask_enhanced_anchors: bool, ranking: str = "best_text"):
        super().__init__()
        if ranking not in RANKINGS:
            raise ValueError(f"MODEL.MQFORMER.DECODER.SELECTION_RANKING: {ranking!r} is not one of {RANKINGS}")
        self.num_queries = num_queries
        self.ranking = ranking
        self.mask_enhanced_anchors = mask_enhanced_anchors
        # Maps encoder tokens into the query space before scoring (Deformable DETR's enc_output).
        self.token_projection = nn.Linear(dim, dim)
        self.token_norm = nn.LayerNorm(dim)

    def forward(self, pixel: PixelDecoderOutput, heads: PredictionHeads, text: TextBatch) -> ConditionalQueries:
        """The K selected proposals, scored against text.embeddings (T, C) of each image's own texts
        (text.valid (B, T) bool)."""
        anchors, usable = token_anchors(pixel.level_shapes, pixel.valid_ratios, pixel.padding_mask)
        tokens = self.token_norm(self.token_projection(pixel.memory.masked_fill(~usable[..., None], 0.0)))
        # (B, S): a token's score is its best logit over the image's own texts.
        logits, deltas = heads.classify_and_box(tokens, text.embeddings)
        if logits.shape[-1] == 0:  # no text in the batch (e.g. every target cropped away): no preference
            scores = logits.new_zeros(logits.shape[:2])
        else:
            scores = logits.masked_fill(~text.valid[:, None, :], -math.inf).amax(-1)
        scores = scores.masked_fill(~usable, -math.inf)
        if self.ranking == "per_text" and logits.shape[-1] > 0:
            index = self._top_k_per_text(logits.detach(), text.valid, usable, scores)
        else:
            index = self._top_k(scores)
        selected_tokens = _gather(tokens, index)
        token_anchors_selected = _gather(anchors, index)
        boxes = _gather(deltas, index) + token_anchors_selected
        pred_logits, pred_masks, _ = heads.forward_prediction_heads(
            selected_tokens, pixel.mask_features, text.embeddings
        )
        proposals = {"pred_logits": pred_logits, "pred_boxes": boxes.sigmoid(), "pred_masks": pred_masks}
        anchors = boxes.detach()
        if self.mask_enhanced_anchors:
            anchors = self._anchors_from_masks(pred_masks.detach(), anchors, pixel.mask_valid_ratio)
        return ConditionalQueries(content=selected_tokens.detach(), anchors=anchors, proposals=proposals,
                                  token_centers=token_anchors_selected[..., :2].sigmoid().detach())

    def _top_k(self, scores: Tensor) -> Tensor:
        """(B, S) -> (B, K) indices; with fewer than K tokens, the best ones repeat."""
        k = min(self.num_queries, scores.shape[1])
        index = scores.topk(k, dim=1).indices
        if k < self.num_queries:
            index = index[:, torch.arange(self.num_queries, device=index.device) % k]
        return index

    def _top_k_per_text(self, logits: Tensor, text_valid: Tensor, usable: Tensor, scores: Tensor) -> Tensor:
        """(B, S, T) logits -> (B, K) indices: each image's texts take turns (see `_round_robin`);
        an image without texts (or usable tokens) falls back to the best-text ranking `scores`."""
        k = min(self.num_queries, logits.shape[1])
        ranked = logits.masked_fill(~usable[..., None], -math.inf).topk(k, dim=1)  # (B, k, T)
        fallback = self._top_k(scores)
        indices = []
        for b in range(logits.shape[0]):
            valid = text_valid[b]
            chosen = _round_robin(ranked.values[b][:, valid], ranked.indices[b][:, valid], self.num_queries)
            indices.append(chosen if chosen is not None else fallback[b])
        return torch.stack(indices)

    @staticmethod
    def _anchors_from_masks(mask_logits: Tensor, fallback: Tensor, mask_valid_ratio: Tensor) -> Tensor:
        """Unsigmoided boxes around the predicted masks; `fallback` (B, K, 4) where a mask is empty.

        mask_valid_ratio: (B, 2) (w, h) unpadded fraction of the mask map, to express the boxes
        relative to the unpadded image like every other box.
        """
        boxes, non_empty = mask_boxes_in_image(mask_logits, mask_valid_ratio)
        return torch.where(non_empty[..., None], inverse_sigmoid(boxes), fallback)


def _round_robin(values: Tensor, tokens: Tensor, count: int):
    """`count` distinct tokens from per-text rankings, or None when no token is usable.

    values, tokens: (k, T) the r-th best score and token of every text in row r (-inf = unusable).
    Rounds are taken in order (every text's best token, then every text's second best, ...) and,
    within a round, higher scores first; a token already taken is skipped. With fewer than `count`
    distinct tokens the chosen ones repeat.
    """
    order = values.argsort(dim=1, descending=True)
    values, tokens = values.gather(1, order).flatten(), tokens.gather(1, order).flatten()
    tokens = tokens[torch.isfinite(values)]
    if tokens.numel() == 0:
        return None
    distinct, inverse = torch.unique(tokens, return_inverse=True)
    position = torch.arange(tokens.numel(), device=tokens.device)
    first = torch.full_like(distinct, tokens.numel()).scatter_reduce(0, inverse, position, "amin")
    chosen = tokens[first.sort().values][:count]
    return chosen[torch.arange(count, device=chosen.device) % chosen.numel()]


def _gather(x: Tensor, index: Tensor) -> Tensor:
    """x (B, S, D), index (B, K) -> (B, K, D)."""
    return torch.gather(x, 1, index[..., None].expand(-1, -1, x.shape[-1]))
