"""The per-query heads shared by every decoder layer and by the encoder proposals."""
import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .mlp import MLP

# Initial probability of every (query, text) pair, so that the focal loss starts from a low prior
# (the RetinaNet / DETR-family initialisation).
_PRIOR_PROBABILITY = 0.01
# Initial temperature of the cosine similarity (CLIP's 1 / 0.07) and its upper bound.
_INITIAL_LOGIT_SCALE = 1 / 0.07
_MAX_LOGIT_SCALE = 100.0


class TextSimilarityClassifier(nn.Module):
    """Class logits = scale * cos(proj(query), text) + bias, with learnable scale and bias."""

    def __init__(self, dim: int):
        super().__init__()
        self.query_projection = nn.Linear(dim, dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(_INITIAL_LOGIT_SCALE)))
        self.bias = nn.Parameter(torch.tensor(-math.log((1 - _PRIOR_PROBABILITY) / _PRIOR_PROBABILITY)))

    def forward(self, queries: Tensor, text_embeddings: Tensor) -> Tensor:
        """queries (B, Q, C), text_embeddings (T, C) -> logits (B, Q, T)."""
        queries = F.normalize(self.query_projection(queries), dim=-1)
        texts = F.normalize(text_embeddings, dim=-1)
        scale = self.log_scale.exp().clamp(max=_MAX_LOGIT_SCALE)
        return scale * torch.einsum("bqc,tc->bqt", queries, texts) + self.bias


def mask_pooled_features(mask_logits: Tensor, mask_features: Tensor) -> Tensor:
    """Average of the pixel embeddings under each query's soft mask.

    mask_logits (B, Q, Hm, Wm), mask_features (B, C, Hm, Wm) -> (B, Q, C). The mask weights are
    detached: the class loss trains the pixel embeddings and the pooling projection, not the masks.
    """
    weights = mask_logits.detach().sigmoid().flatten(2)  # (B, Q, HW)
    pooled = torch.einsum("bqp,bcp->bqc", weights, mask_features.flatten(2))
    return pooled / weights.sum(-1, keepdim=True).clamp(min=1e-6)


class PredictionHeads(nn.Module):
    """Normalise the queries, then predict class logits (vs texts), box deltas and mask logits.

    One instance serves every decoder layer, the initial prediction and the encoder proposals
    (Mask DINO's single `forward_prediction_heads`). With `mask_pooled_classification` (not in
    the paper) the classifier sees the query plus a projection of the stride-4 pixel embeddings
    pooled under the query's own mask: what an object looks like at full detail, which a query's
    few deformable samples of the encoder miss for small objects. The projection starts at zero,
    so training starts from the paper's head.
    """

    def __init__(self, dim: int, mask_pooled_classification: bool = False):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.classifier = TextSimilarityClassifier(dim)
        self.pooled_projection = nn.Linear(dim, dim) if mask_pooled_classification else None
        if self.pooled_projection is not None:
            nn.init.zeros_(self.pooled_projection.weight)
            nn.init.zeros_(self.pooled_projection.bias)
        self.mask_embed = MLP(dim, dim, dim, 3)
        self.box_delta = MLP(dim, dim, 4, 3)
        # Start refinement as the identity: the first boxes are the anchors themselves.
        nn.init.zeros_(self.box_delta.layers[-1].weight)
        nn.init.zeros_(self.box_delta.layers[-1].bias)

    def forward_prediction_heads(
        self, queries: Tensor, mask_features: Tensor, text_embeddings: Tensor
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """
        Args:
            queries: (B, Q, C) decoder outputs.
            mask_features: (B, C, Hm, Wm) stride-4 pixel embeddings.
            text_embeddings: (T, C).

        Returns:
            logits (B, Q, T), mask logits (B, Q, Hm, Wm), unsigmoided box deltas (B, Q, 4).
        """
        queries = self.norm(queries)
        masks = torch.einsum("bqc,bchw->bqhw", self.mask_embed(queries), mask_features)
        class_input = queries
        if self.pooled_projection is not None:
            class_input = queries + self.pooled_projection(mask_pooled_features(masks, mask_features))
        logits = self.classifier(class_input, text_embeddings)
        return logits, masks, self.box_delta(queries)
