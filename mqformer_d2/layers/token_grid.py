"""Where the tokens of a flattened multi-scale feature map sit: the centre of every cell of every
level, in the coordinates that deformable attention and the anchor boxes use."""
from typing import List

import torch
from torch import Tensor


def token_centers(spatial_shapes: Tensor, valid_ratios: Tensor) -> Tensor:
    """The (x, y) centre of every token, normalised by the unpadded extent of its level.

    Args:
        spatial_shapes: (L, 2) int64 (H_l, W_l) of the levels, in the tokens' order.
        valid_ratios: (B, L, 2) (w, h) fraction of each level that is not padding.

    Returns:
        (B, S, 2), S = sum of H_l * W_l, levels concatenated; (1, 1) is the far corner of the
        unpadded image, so padded tokens lie beyond 1.
    """
    centers: List[Tensor] = []
    for level, (height, width) in enumerate(spatial_shapes.tolist()):
        ys, xs = torch.meshgrid(
            torch.arange(height, dtype=valid_ratios.dtype, device=valid_ratios.device) + 0.5,
            torch.arange(width, dtype=valid_ratios.dtype, device=valid_ratios.device) + 0.5,
            indexing="ij",
        )
        x = xs.reshape(1, -1) / (valid_ratios[:, None, level, 0] * width)
        y = ys.reshape(1, -1) / (valid_ratios[:, None, level, 1] * height)
        centers.append(torch.stack([x, y], -1))
    return torch.cat(centers, 1)
