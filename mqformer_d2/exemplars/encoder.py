"""`ExemplarEncoder`: region read-outs of K exemplars -> one prompt embedding in the space of the
text embeddings (the class head compares queries with either the same way)."""
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .pooling import build_pooling, pool_sets


class ExemplarEncoder(nn.Module):
    """A small head on the region read-outs of `regions.pool_regions`, then a pooling of the K
    exemplars of a prompt (`pooling.POOLINGS`).

    head: LayerNorm over the M * C read-out, Linear -> ReLU -> Linear to C; each exemplar's
    embedding h_k is unit-norm (the projected text embeddings the decoder reads have norm ~1, and the
    cosine class head ignores norms). The pooled prompt is unit-norm again.

    Args:
        num_maps: M, the maps read under each exemplar (encoder levels + mask features).
        dim: C, the decoder width.
        pooling: a name of `pooling.POOLINGS`.
        attention_dim: hidden width of the attention poolings.
        grid_size: RoIAlign grid side of the read-outs (used by the callers of `pool_regions`).
    """

    def __init__(self, num_maps: int, dim: int, pooling: str = "attention", attention_dim: int = 32,
                 grid_size: int = 4):
        super().__init__()
        self.num_maps = num_maps
        self.grid_size = grid_size
        self.pooling_name = pooling
        self.head = nn.Sequential(nn.LayerNorm(num_maps * dim), nn.Linear(num_maps * dim, dim), nn.ReLU(),
                                  nn.Linear(dim, dim))
        self.pooling = build_pooling(pooling, dim, attention_dim)

    def embed(self, regions: Tensor) -> Tensor:
        """(K, M, C) region read-outs -> (K, C) unit-norm exemplar embeddings h_k."""
        if regions.dim() != 3 or regions.shape[1] != self.num_maps:
            raise ValueError(f"exemplar read-outs must be (K, {self.num_maps}, C), got {tuple(regions.shape)}")
        return F.normalize(self.head(regions.flatten(1)), dim=-1)

    def pool(self, embeddings: List[Tensor]) -> Tensor:
        """P prompts' exemplar embeddings, (K_p, C) each (K_p >= 1, any mix) -> (P, C) unit-norm
        prompt embeddings."""
        return F.normalize(pool_sets(self.pooling, embeddings), dim=-1)

    def forward(self, regions: List[Tensor]) -> Tensor:
        """P prompts' read-outs, (K_p, M, C) each -> (P, C) prompt embeddings."""
        sizes = [r.shape[0] for r in regions]
        if any(size == 0 for size in sizes):
            raise ValueError(f"every exemplar prompt needs at least one exemplar; got K = {sizes}")
        embedded = self.embed(torch.cat(regions)) if regions else None
        return self.pool(list(torch.split(embedded, sizes)) if embedded is not None else [])


def num_feature_maps(cfg) -> int:
    """M: the pixel decoder's encoder levels (its input features plus extra levels) + the mask features."""
    decoder = cfg.MODEL.MQFORMER.PIXEL_DECODER
    return len(decoder.IN_FEATURES) + decoder.NUM_EXTRA_LEVELS + 1


def build_exemplar_encoder(cfg) -> Optional[ExemplarEncoder]:
    """The model's exemplar encoder (None unless MODEL.MQFORMER.EXEMPLARS.ENABLED)."""
    exemplars = cfg.MODEL.MQFORMER.EXEMPLARS
    if not exemplars.ENABLED:
        return None
    return ExemplarEncoder(num_feature_maps(cfg), cfg.MODEL.MQFORMER.HIDDEN_DIM, exemplars.POOLING,
                           exemplars.ATTENTION_DIM, exemplars.GRID_SIZE)
