"""The per-query heads shared by every decoder layer and by the encoder proposals."""
import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mqformer_d2.layers import MLP

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


class PredictionHeads(nn.Module):
    """Normalise the queries, then predict class logits (vs texts), box deltas and mask logits.

    One instance serves every decoder layer, the initial prediction and the encoder proposals
    (Mask DINO's single `forward_prediction_heads`).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.classifier = TextSimilarityClassifier(dim)
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
        logits = self.classifier(queries, text_embeddings)
        masks = torch.einsum("bqc,bchw->bqhw", self.mask_embed(queries), mask_features)
        return logits, masks, self.box_delta(queries)

    def classify_and_box(self, tokens: Tensor, text_embeddings: Tensor) -> Tuple[Tensor, Tensor]:
        """Class logits and box deltas without masks, e.g. for every encoder token (the proposals
        that the conditional queries are selected from).

        Args:
            tokens: (B, S, C); text_embeddings: (T, C).

        Returns:
            logits (B, S, T), unsigmoided box deltas (B, S, 4).
        """
        tokens = self.norm(tokens)
        return self.classifier(tokens, text_embeddings), self.box_delta(tokens)
