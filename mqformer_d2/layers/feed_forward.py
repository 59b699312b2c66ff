"""The residual feed-forward block shared by the encoder and decoder layers."""
from torch import Tensor, nn


class ResidualFeedForward(nn.Module):
    """norm(x + dropout(Linear(ReLU(Linear(x))))) on (..., dim) tensors (post-norm, as in DINO)."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden_dim), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden_dim, dim),
        )
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.dropout(self.net(x)))
