"""Read-outs of MQ-Former's own features under an exemplar's box (or mask): RoIAlign of every
encoder level of the pixel decoder's memory and of the stride-4 mask features.

A box exemplar averages the S x S RoIAlign grid of each map; a mask exemplar weights the grid's
cells by the mask's RoIAlign under the same box (the fraction of each cell the mask covers), so
only the object's own cells count. Result: (K, M, C), M = L encoder levels + 1 (mask features).
"""
from typing import List, Optional

import torch
from torch import Tensor
from torchvision.ops import roi_align

from ..modeling.pixel_decoder import PixelDecoderOutput


def feature_maps(pixel: PixelDecoderOutput) -> List[Tensor]:
    """The pixel decoder's memory (B, S, C) split into its L levels (B, C, H_l, W_l), finest
    first, followed by the mask features (B, C, Hm, Wm)."""
    batch, _, channels = pixel.memory.shape
    maps = []
    for (height, width), start in zip(pixel.spatial_shapes.tolist(), pixel.level_start_index.tolist()):
        tokens = pixel.memory[:, start:start + height * width]
        maps.append(tokens.transpose(1, 2).reshape(batch, channels, height, width))
    maps.append(pixel.mask_features)
    return maps


def pool_regions(pixel: PixelDecoderOutput, padded_width: int, boxes: Tensor, image_index: Tensor,
                 masks: Optional[Tensor] = None, grid_size: int = 4) -> Tensor:
    """Average each feature map under each exemplar's box (weighted by its mask when given).

    Args:
        pixel: the pixel decoder's output for B padded images of width `padded_width`.
        boxes: (K, 4) float xyxy in the padded input's pixels.
        image_index: (K,) int64, the image (0..B-1) of each box.
        masks: optional (K, Hpad, Wpad) float or bool masks in the padded input's pixels; None =
            box exemplars (every grid cell weighs the same).
        grid_size: side S of the RoIAlign grid.

    Returns:
        (K, M, C) features, M = L + 1 maps (encoder levels finest first, then mask features).
    """
    rois = torch.cat([image_index.to(boxes.dtype)[:, None], boxes], dim=1)
    weights = torch.ones(len(boxes), 1, grid_size, grid_size, dtype=boxes.dtype, device=boxes.device)
    if masks is not None:
        own_rois = torch.cat([torch.arange(len(boxes), dtype=boxes.dtype, device=boxes.device)[:, None], boxes], 1)
        weights = roi_align(masks[:, None].to(boxes.dtype), own_rois, grid_size, 1.0, 2, aligned=True)
        weights = weights + 1e-6  # a mask thinner than the grid still gives a defined average
    pooled = []
    for feature_map in feature_maps(pixel):
        scale = feature_map.shape[-1] / padded_width
        grid = roi_align(feature_map, rois, grid_size, scale, 2, aligned=True)  # (K, C, S, S)
        pooled.append((grid * weights).sum((2, 3)) / weights.sum((2, 3)))
    return torch.stack(pooled, dim=1)
