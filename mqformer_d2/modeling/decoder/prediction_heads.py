"""The per-query heads shared by every decoder layer and by the encoder proposals."""
import math
from typing import Dict, Tuple

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


SIMILARITIES = ("cosine", "dot")


class TextSimilarityClassifier(nn.Module):
    """Class logits = scale * similarity(proj(query), text) + bias.

    Args:
        dim: width C of queries and texts.
        similarity: "cosine" (unit vectors, the default) or "dot": the unnormalised product divided
            by sqrt(C) (GLIP's), where a name's norm can carry how confidently it is separated.
        fixed_logit_scale: 0 = a learned scale (starting at CLIP's 1 / 0.07 for "cosine", 1 for
            "dot"); > 0 = this constant (Detic fixes 50 for cosine), no parameter.
    """

    def __init__(self, dim: int, similarity: str = "cosine", fixed_logit_scale: float = 0.0):
        super().__init__()
        if similarity not in SIMILARITIES:
            raise ValueError(f"class similarity {similarity!r} is not one of {SIMILARITIES}")
        if fixed_logit_scale < 0:
            raise ValueError(f"a fixed class logit scale must be > 0 (or 0 = learned), got {fixed_logit_scale}")
        self.similarity = similarity
        self.query_projection = nn.Linear(dim, dim)
        if fixed_logit_scale > 0:
            self.register_buffer("log_scale", torch.tensor(math.log(fixed_logit_scale)), persistent=False)
        else:
            initial = _INITIAL_LOGIT_SCALE if similarity == "cosine" else 1.0
            self.log_scale = nn.Parameter(torch.tensor(math.log(initial)))
        self.bias = nn.Parameter(torch.tensor(-math.log((1 - _PRIOR_PROBABILITY) / _PRIOR_PROBABILITY)))

    @property
    def logit_scale(self) -> Tensor:
        """() the scale the logits use: exp of the learned log scale, clamped."""
        return self.log_scale.exp().clamp(max=_MAX_LOGIT_SCALE)

    def embed_queries(self, queries: Tensor) -> Tensor:
        """(..., C) queries -> (..., C) the vectors compared with the texts (unit vectors for
        "cosine"; divided by sqrt(C) for "dot")."""
        projected = self.query_projection(queries)
        if self.similarity == "cosine":
            return F.normalize(projected, dim=-1)
        return projected / math.sqrt(projected.shape[-1])

    def forward(self, queries: Tensor, text_embeddings: Tensor) -> Tensor:
        """queries (B, Q, C), text_embeddings (T, C) -> logits (B, Q, T)."""
        queries = self.embed_queries(queries)
        texts = F.normalize(text_embeddings, dim=-1) if self.similarity == "cosine" else text_embeddings
        return self.logit_scale * torch.einsum("bqc,tc->bqt", queries, texts) + self.bias


class PredictionHeads(nn.Module):
    """Normalise the queries, then predict class logits (vs texts), box deltas and mask logits.

    One instance serves every decoder layer, the initial prediction and the encoder proposals
    (Mask DINO's single `forward_prediction_heads`). class_similarity, fixed_logit_scale: see
    `TextSimilarityClassifier`.
    """

    def __init__(self, dim: int, class_similarity: str = "cosine", fixed_logit_scale: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.classifier = TextSimilarityClassifier(dim, class_similarity, fixed_logit_scale)
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

    def class_embedding(self, queries: Tensor) -> Tensor:
        """(..., C) decoder queries -> (..., C) the unit vectors that the class head compares with
        the texts (normalised, then projected): what a probe of the class head's input reads."""
        return self.classifier.embed_queries(self.norm(queries))

    def class_calibration(self) -> Dict[str, Tensor]:
        """The class logit's scale and bias (logit = scale * cos(query, text) + bias), detached
        scalars: "logit_scale" as the logits use it (clamped), "logit_scale_raw" (exp of the
        learned log scale, unclamped), "logit_bias"."""
        classifier = self.classifier
        return {"logit_scale": classifier.logit_scale.detach(),
                "logit_scale_raw": classifier.log_scale.detach().exp(),
                "logit_bias": classifier.bias.detach()}
