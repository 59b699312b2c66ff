"""One decoder layer of MQ-Former: dual-query cross-attention, self-attention, deformable
cross-attention to the image memory, and a feed-forward network (all post-norm, as in DINO)."""
from typing import Optional

import torch
from torch import Tensor, nn

from mqformer_d2.layers import MSDeformAttn, ResidualAttention, ResidualFeedForward, SpatialShapes

from .box_readout import BoxReadout


class MixedQueryDecoderLayer(nn.Module):
    """Refines the query sequence [prefix (denoising) | learnable | conditional].

    1. Dual-query cross-attention (the paper's query fusion): conditional queries attend to the
       learnable ones ("learnable -> conditional") and learnable queries attend to the conditional
       ones ("conditional -> learnable"), both from the layer's input. A direction whose source set
       is empty is not built. Prefix (denoising) queries take no part, so that no matching query
       sees them.
    2. Self-attention over all queries, under the denoising attention mask.
    3. Multi-scale deformable cross-attention to the encoder memory around each query's anchor box.
    4. Optionally (`box_readout_size` > 0), a RoIAlign grid of the mask features under the anchor
       box, projected and added (`BoxReadout`).
    5. Feed-forward network.

    Args:
        num_learnable, num_conditional: sizes of the two query sets.
        box_readout_size: side of the box read-out grid; 0 = no read-out.
    """

    def __init__(self, *, dim: int, num_heads: int, num_levels: int, num_points: int,
                 dim_feedforward: int, dropout: float, num_learnable: int, num_conditional: int,
                 box_readout_size: int = 0):
        super().__init__()
        self.num_learnable = num_learnable
        self.num_conditional = num_conditional
        fuse = num_learnable > 0 and num_conditional > 0
        self.learnable_to_conditional = ResidualAttention(dim, num_heads, dropout) if fuse else None
        self.conditional_to_learnable = ResidualAttention(dim, num_heads, dropout) if fuse else None
        self.self_attention = ResidualAttention(dim, num_heads, dropout)
        self.cross_attention = MSDeformAttn(dim, num_levels, num_heads, num_points)
        self.cross_dropout = nn.Dropout(dropout)
        self.cross_norm = nn.LayerNorm(dim)
        self.box_readout = BoxReadout(dim, box_readout_size) if box_readout_size > 0 else None
        self.ffn = ResidualFeedForward(dim, dim_feedforward, dropout)

    def fuse_query_sets(self, queries: Tensor, query_pos: Tensor, num_prefix: int) -> Tensor:
        """Dual-query cross-attention; (B, N_prefix + N_l + N_c, C) -> same shape."""
        if self.learnable_to_conditional is None:
            return queries
        split = num_prefix + self.num_learnable
        prefix, learnable, conditional = queries[:, :num_prefix], queries[:, num_prefix:split], queries[:, split:]
        learnable_pos, conditional_pos = query_pos[:, num_prefix:split], query_pos[:, split:]
        new_conditional = self.learnable_to_conditional(conditional, conditional_pos, learnable, learnable_pos)
        new_learnable = self.conditional_to_learnable(learnable, learnable_pos, conditional, conditional_pos)
        return torch.cat([prefix, new_learnable, new_conditional], 1)

    def forward(self, queries: Tensor, query_pos: Tensor, reference_boxes: Tensor, memory: Tensor,
                spatial_shapes: SpatialShapes, level_start_index: Tensor, memory_padding_mask: Tensor,
                self_attn_mask: Optional[Tensor] = None, num_prefix: int = 0,
                boxes: Optional[Tensor] = None, mask_features: Optional[Tensor] = None,
                mask_valid_ratio: Optional[Tensor] = None) -> Tensor:
        """
        Args:
            queries, query_pos: (B, N, C), N = num_prefix + N_l + N_c.
            reference_boxes: (B, N, L, 4) normalised (cx, cy, w, h) in each level's padded frame.
            memory: (B, S, C); memory_padding_mask: (B, S) bool.
            self_attn_mask: (N, N) bool, True = blocked (denoising groups), or None.
            boxes, mask_features, mask_valid_ratio: the anchor boxes (B, N, 4) normalised to the
                unpadded image, (B, C, Hm, Wm) and (B, 2); read only by the box read-out.

        Returns:
            (B, N, C).
        """
        queries = self.fuse_query_sets(queries, query_pos, num_prefix)
        queries = self.self_attention(queries, query_pos, queries, query_pos, attn_mask=self_attn_mask)
        attended = self.cross_attention(
            queries + query_pos, reference_boxes, memory, spatial_shapes, level_start_index, memory_padding_mask
        )
        queries = self.cross_norm(queries + self.cross_dropout(attended))
        if self.box_readout is not None:
            queries = self.box_readout(queries, boxes, mask_features, mask_valid_ratio)
        return self.ffn(queries)

