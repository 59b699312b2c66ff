"""The residual attention block shared by the decoder layers (self- and query-set cross-attention)."""
from typing import Optional

from torch import Tensor, nn


class ResidualAttention(nn.Module):
    """norm(x + dropout(MultiheadAttention(x + pos_x, y + pos_y, y))) for (B, N, C) sequences."""

    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, x_pos: Tensor, y: Tensor, y_pos: Tensor,
                attn_mask: Optional[Tensor] = None) -> Tensor:
        """x: (B, Nx, C) attends to y: (B, Ny, C); attn_mask (Nx, Ny) bool, True = blocked."""
        attended = self.attention(x + x_pos, y + y_pos, y, attn_mask=attn_mask, need_weights=False)[0]
        return self.norm(x + self.dropout(attended))
