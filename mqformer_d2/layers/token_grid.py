"""Where the tokens of a flattened multi-scale feature map sit: the centre of every cell of every
level, in the coordinates that deformable attention and the anchor boxes use."""
from typing import List, Sequence, Tuple, Union

import torch
from torch import Tensor

# The (H_l, W_l) of the levels: an (L, 2) int64 tensor (what the compiled op takes) or a sequence of
# pairs of ints. The model passes the pairs: they are plain Python sizes in eager mode and symbolic
# sizes under torch.export, which cannot read sizes back out of a tensor's values.
SpatialShapes = Union[Tensor, Sequence[Tuple[int, int]]]


def level_shapes(spatial_shapes: SpatialShapes) -> List[Tuple[int, int]]:
    """[(H_l, W_l), ...] of an (L, 2) tensor or a sequence of pairs."""
    if isinstance(spatial_shapes, Tensor):
        return [(int(height), int(width)) for height, width in spatial_shapes.tolist()]
    return [(height, width) for height, width in spatial_shapes]


def shapes_tensor(shapes: Sequence[Tuple[int, int]], device: torch.device) -> Tensor:
    """L pairs (H_l, W_l) -> (L, 2) int64 tensor. Built from 0-d tensors, since `torch.as_tensor`
    of symbolic sizes would fix them to the sizes seen while exporting."""
    return torch.stack([
        torch.stack([torch.scalar_tensor(height, dtype=torch.int64, device=device),
                     torch.scalar_tensor(width, dtype=torch.int64, device=device)])
        for height, width in shapes
    ])


def token_centers(spatial_shapes: SpatialShapes, valid_ratios: Tensor) -> Tensor:
    """The (x, y) centre of every token, normalised by the unpadded extent of its level.

    Args:
        spatial_shapes: (H_l, W_l) of the levels, in the tokens' order (`SpatialShapes`).
        valid_ratios: (B, L, 2) (w, h) fraction of each level that is not padding.

    Returns:
        (B, S, 2), S = sum of H_l * W_l, levels concatenated; (1, 1) is the far corner of the
        unpadded image, so padded tokens lie beyond 1.
    """
    centers: List[Tensor] = []
    for level, (height, width) in enumerate(level_shapes(spatial_shapes)):
        ys, xs = torch.meshgrid(
            torch.arange(height, dtype=valid_ratios.dtype, device=valid_ratios.device) + 0.5,
            torch.arange(width, dtype=valid_ratios.dtype, device=valid_ratios.device) + 0.5,
            indexing="ij",
        )
        x = xs.reshape(1, -1) / (valid_ratios[:, None, level, 0] * width)
        y = ys.reshape(1, -1) / (valid_ratios[:, None, level, 1] * height)
        centers.append(torch.stack([x, y], -1))
    return torch.cat(centers, 1)
