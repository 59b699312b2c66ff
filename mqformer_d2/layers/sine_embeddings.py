"""Fixed sine embeddings of positions: of feature-map pixels (encoder) and of anchor boxes (decoder).

Both follow the Transformer recipe: a coordinate x in [0, 1] (times 2*pi) becomes
sin/cos(x / temperature^(2i/d)) for i < d/2, so nearby positions get similar embeddings.
"""
import math

import torch
from torch import Tensor


def _frequencies(num_feats: int, temperature: float, device) -> Tensor:
    """(num_feats,) inverse frequencies, each one used by a sin/cos pair."""
    index = torch.arange(num_feats, dtype=torch.float32, device=device)
    return temperature ** (2 * torch.div(index, 2, rounding_mode="floor") / num_feats)


def _interleave_sin_cos(angles: Tensor) -> Tensor:
    """(..., F) angles -> (..., F) with sin on even and cos on odd channels."""
    return torch.stack([angles[..., 0::2].sin(), angles[..., 1::2].cos()], -1).flatten(-2)


def feature_map_position_embedding(
    padding_mask: Tensor, num_feats: int, temperature: float = 10000.0
) -> Tensor:
    """Sine embedding of each pixel's position inside the valid (unpadded) region.

    Args:
        padding_mask: (B, H, W) bool, True at padded pixels.
        num_feats: channels per axis; the output has 2 * num_feats channels (y first, then x).

    Returns:
        (B, 2 * num_feats, H, W) float32.
    """
    valid = (~padding_mask).float()
    y = valid.cumsum(1)
    x = valid.cumsum(2)
    # Normalise by the valid extent so that the embedding does not depend on how much padding
    # the batch added; the 0.5 shift puts pixel centres at (i + 0.5) / size.
    eps = 1e-6
    y = (y - 0.5) / (y[:, -1:, :] + eps) * 2 * math.pi
    x = (x - 0.5) / (x[:, :, -1:] + eps) * 2 * math.pi
    freqs = _frequencies(num_feats, temperature, padding_mask.device)
    pos_y = _interleave_sin_cos(y[..., None] / freqs)
    pos_x = _interleave_sin_cos(x[..., None] / freqs)
    return torch.cat([pos_y, pos_x], -1).permute(0, 3, 1, 2)


def box_position_embedding(boxes: Tensor, num_feats: int, temperature: float = 10000.0) -> Tensor:
    """Sine embedding of anchor boxes, one block of `num_feats` channels per coordinate.

    Args:
        boxes: (..., 4) normalised (cx, cy, w, h) in [0, 1].

    Returns:
        (..., 4 * num_feats), blocks in the order (cy, cx, w, h) as in DAB-DETR.
    """
    freqs = _frequencies(num_feats, temperature, boxes.device)
    angles = boxes[..., None].float() * (2 * math.pi) / freqs  # (..., 4, F)
    cx, cy, w, h = (_interleave_sin_cos(angles[..., i, :]) for i in range(4))
    return torch.cat([cy, cx, w, h], -1).to(boxes.dtype)
