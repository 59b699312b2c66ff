"""Per-target read-outs of feature maps: RoIAlign grids under a box (geometry kept), averages under
a mask (geometry thrown away), and the ground-truth mask itself cropped to its box.

Boxes are XYXY in input pixels (the padded image frame; images are top-left aligned).
"""
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import roi_align


def roi_grid(feature_map: Tensor, boxes: Tensor, spatial_scale: float, grid: int = 4) -> Tensor:
    """RoIAlign (aligned=True) of one image's map under each box.

    Args:
        feature_map: (C, H, W), one image.
        boxes: (K, 4) XYXY in input pixels.
        spatial_scale: map cells per input pixel (1 / stride).
        grid: the read-out is grid x grid cells.

    Returns:
        (K, C * grid * grid), each target's grid flattened channel-major.
    """
    pooled = roi_align(feature_map[None].float(), [boxes.float()], output_size=grid,
                       spatial_scale=spatial_scale, aligned=True)
    return pooled.flatten(1)


def mask_average(feature_map: Tensor, masks: Tensor) -> Tensor:
    """The previous probe's read-out: the map averaged under each mask, L2-normalised.

    Args:
        feature_map: (C, h, w), one image.
        masks: (K, H, W) bool at input resolution (resized to the map by area, so a mask smaller
            than a cell still counts).

    Returns:
        (K, C) unit vectors.
    """
    weights = F.interpolate(masks[None].float(), size=feature_map.shape[-2:], mode="area")[0]
    weights = weights / weights.flatten(1).sum(-1).clamp(min=1e-6)[:, None, None]
    return F.normalize(torch.einsum("khw,chw->kc", weights, feature_map.float()), dim=-1)


def gt_mask_crop(masks: Tensor, boxes: Tensor, size: int = 16) -> Tensor:
    """The upper-bound read-out: each ground-truth mask cropped to its own box, resized.

    Args:
        masks: (K, H, W) bool.
        boxes: (K, 4) XYXY in mask pixels.
        size: output side.

    Returns:
        (K, size * size) mask coverage in [0, 1] of each output cell.
    """
    rois = torch.cat([torch.arange(len(boxes), dtype=torch.float32, device=boxes.device)[:, None],
                      boxes.float()], 1)
    return roi_align(masks[:, None].float(), rois, output_size=size, aligned=True).flatten(1)
