"""The deformable transformer encoder (Deformable DETR): multi-scale self-attention by sampling."""
from torch import Tensor, nn

from mqformer_d2.layers import MSDeformAttn, ResidualFeedForward, SpatialShapes, token_centers


class DeformableEncoderLayer(nn.Module):
    """Post-norm layer: multi-scale deformable self-attention, then a feed-forward network."""

    def __init__(self, *, dim: int, num_levels: int, num_heads: int, num_points: int,
                 dim_feedforward: int, dropout: float):
        super().__init__()
        self.self_attn = MSDeformAttn(dim, num_levels, num_heads, num_points)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = ResidualFeedForward(dim, dim_feedforward, dropout)

    def forward(self, tokens: Tensor, pos: Tensor, reference_points: Tensor, spatial_shapes: SpatialShapes,
                level_start_index: Tensor, padding_mask: Tensor) -> Tensor:
        """tokens, pos: (B, S, C); reference_points: (B, S, L, 2); padding_mask: (B, S) -> (B, S, C)."""
        attended = self.self_attn(
            tokens + pos, reference_points, tokens, spatial_shapes, level_start_index, padding_mask
        )
        tokens = self.norm1(tokens + self.dropout1(attended))
        return self.ffn(tokens)


class DeformableEncoder(nn.Module):
    """A stack of `DeformableEncoderLayer`s over flattened multi-scale tokens."""

    def __init__(self, *, num_layers: int, **layer_kwargs):
        super().__init__()
        self.layers = nn.ModuleList(DeformableEncoderLayer(**layer_kwargs) for _ in range(num_layers))

    @staticmethod
    def reference_points(spatial_shapes: SpatialShapes, valid_ratios: Tensor) -> Tensor:
        """Centre of every token, seen from every level.

        Args:
            spatial_shapes: (H_l, W_l) of each level (`SpatialShapes`).
            valid_ratios: (B, L, 2) (w, h) fraction of each level that is not padding.

        Returns:
            (B, S, L, 2) normalised (x, y) in padded-map coordinates.
        """
        points = token_centers(spatial_shapes, valid_ratios)  # (B, S, 2), relative to the valid region
        # Back to padded coordinates of each level (whose valid fraction differs by rounding).
        return points[:, :, None] * valid_ratios[:, None]

    def forward(self, tokens: Tensor, pos: Tensor, spatial_shapes: SpatialShapes, level_start_index: Tensor,
                valid_ratios: Tensor, padding_mask: Tensor) -> Tensor:
        """tokens, pos: (B, S, C); padding_mask: (B, S) bool -> (B, S, C)."""
        reference_points = self.reference_points(spatial_shapes, valid_ratios)
        for layer in self.layers:
            tokens = layer(tokens, pos, reference_points, spatial_shapes, level_start_index, padding_mask)
        return tokens
