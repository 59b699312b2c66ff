"""A geometry-keeping read-out of the stride-4 mask features under each query's anchor box.

Deformable cross-attention gives a query a few sampled points per head and level; what an
object's outline looks like inside its box is mostly lost there. The issue-11 probes measured
it: a linear probe names 61% of the benchmark's shapes from a 4x4 RoIAlign grid of the mask
features under the box, against 30-34% from the (selected or decoded) query itself. This module
hands that grid to every decoder layer, as Mask R-CNN's RoI head reads a box.
"""
import torch
from torch import Tensor, nn
from torchvision.ops import roi_align

from mqformer_d2.layers.box_utils import cxcywh_to_xyxy


def box_grid_features(mask_features: Tensor, boxes: Tensor, mask_valid_ratio: Tensor, size: int) -> Tensor:
    """RoIAlign grids of the mask features under every box.

    Args:
        mask_features: (B, C, Hm, Wm) stride-4 pixel embeddings (padded frame).
        boxes: (B, N, 4) normalised (cx, cy, w, h) relative to the unpadded image.
        mask_valid_ratio: (B, 2) (w, h) unpadded fraction of the mask-feature map.
        size: grid side S.

    Returns:
        (B, N, C * S * S), each box's S x S grid flattened channel-major.
    """
    batch, num_boxes = boxes.shape[:2]
    height, width = mask_features.shape[-2:]
    # Normalised unpadded coordinates -> pixel coordinates of the padded feature map.
    scale = mask_valid_ratio * mask_valid_ratio.new_tensor([width, height])  # (B, 2)
    xyxy = cxcywh_to_xyxy(boxes) * scale.repeat(1, 2)[:, None]
    batch_index = torch.arange(batch, device=boxes.device, dtype=boxes.dtype)
    rois = torch.cat([batch_index[:, None, None].expand(-1, num_boxes, 1), xyxy], -1).reshape(-1, 5)
    grids = roi_align(mask_features, rois.to(mask_features.dtype), size, sampling_ratio=2, aligned=True)
    return grids.reshape(batch, num_boxes, -1)


class BoxReadout(nn.Module):
    """queries + Linear(grid under the anchor box), then LayerNorm: (B, N, C) -> (B, N, C).

    Args:
        dim: query width C (= the mask features' channels).
        size: grid side S.
    """

    def __init__(self, dim: int, size: int):
        super().__init__()
        self.size = size
        self.projection = nn.Linear(dim * size * size, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, queries: Tensor, boxes: Tensor, mask_features: Tensor, mask_valid_ratio: Tensor) -> Tensor:
        """queries (B, N, C); boxes (B, N, 4) normalised (cx, cy, w, h); see `box_grid_features`."""
        grids = box_grid_features(mask_features, boxes, mask_valid_ratio, self.size)
        return self.norm(queries + self.projection(grids))
