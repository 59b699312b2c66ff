"""Box helpers shared by the decoder, the meta-architecture, the post-processing and the data
(tight boxes of masks).

Boxes inside the model are (cx, cy, w, h) normalised by the *unpadded* image size (the DETR
convention); the decoder keeps its anchors unsigmoided ("logits") so that refinements add up.
"""
import torch
from torch import Tensor
from torchvision.ops import box_convert


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """`torch.logit(x, eps)`: logit with x clamped into [eps, 1 - eps], so that 0 and 1 (boxes at the
    image border) and the anchors of padded tokens (> 1) map to finite values.

    It replaced a clamp-then-log(x / (1 - x)) that gave the same bits for every input the model
    passes: float32 boxes (all float32 in [0, 1] checked, and beyond it both clamp). The two differ
    only for float16 on CUDA, where torch.logit computes in float32 (no caller passes float16:
    the mask-enhanced anchors become float32 when divided by the valid ratios).
    """
    return torch.logit(x, eps)


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """(..., 4) (cx, cy, w, h) -> (..., 4) (x0, y0, x1, y1)."""
    return box_convert(boxes, "cxcywh", "xyxy")


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """(..., 4) (x0, y0, x1, y1) -> (..., 4) (cx, cy, w, h)."""
    return box_convert(boxes, "xyxy", "cxcywh")


def masks_to_pixel_boxes(masks: Tensor) -> tuple:
    """Tight boxes of masks in pixel coordinates: the one tight-box helper of the package (the
    model's normalised boxes and the data side's per-mask boxes are made from it).

    Args:
        masks: (..., H, W) bool.

    Returns:
        boxes: (..., 4) int64 xyxy, pixel edges included (a one-pixel mask at (0, 0) gives
            (0, 0, 1, 1)); zeros where the mask is empty.
        non_empty: (...,) bool, False where the mask has no True pixel.
    """
    height, width = masks.shape[-2:]
    rows = masks.any(-1)  # (..., H)
    cols = masks.any(-2)  # (..., W)
    non_empty = rows.any(-1)
    y_index = torch.arange(height, device=masks.device)
    x_index = torch.arange(width, device=masks.device)
    # Non-occupied rows/columns are pushed beyond the image so that min/max ignore them.
    y0 = torch.where(rows, y_index, height).amin(-1)
    y1 = torch.where(rows, y_index, -1).amax(-1) + 1
    x0 = torch.where(cols, x_index, width).amin(-1)
    x1 = torch.where(cols, x_index, -1).amax(-1) + 1
    boxes = torch.stack([x0, y0, x1, y1], -1)
    return torch.where(non_empty[..., None], boxes, torch.zeros_like(boxes)), non_empty


def masks_to_normalized_boxes(mask_logits: Tensor) -> tuple:
    """Tight boxes around the positive pixels (logit > 0) of masks.

    Args:
        mask_logits: (..., H, W) mask logits.

    Returns:
        boxes: (..., 4) xyxy normalised by (W, H), pixel edges included (a one-pixel mask at
            (0, 0) gives (0, 0, 1/W, 1/H)).
        non_empty: (...,) bool, False where the mask has no positive pixel (its box is zeros).
    """
    height, width = mask_logits.shape[-2:]
    pixel_boxes, non_empty = masks_to_pixel_boxes(mask_logits > 0)
    x0, y0, x1, y1 = pixel_boxes.unbind(-1)
    # Integer / Python int, as before the pixel boxes were shared: the same float32 bits.
    boxes = torch.stack([x0 / width, y0 / height, x1 / width, y1 / height], -1).to(mask_logits.dtype)
    return boxes, non_empty


def mask_boxes_in_image(mask_logits: Tensor, mask_valid_ratio: Tensor) -> tuple:
    """Tight boxes of masks of a padded batch, in the model's box convention.

    Args:
        mask_logits: (B, N, Hm, Wm) mask logits over the padded frame (positive = inside).
        mask_valid_ratio: (B, 2) (w, h) unpadded fraction of that frame.

    Returns:
        boxes: (B, N, 4) (cx, cy, w, h) normalised by the unpadded image, clamped to it (zeros'
            box where a mask is empty); non_empty: (B, N) bool.
    """
    boxes, non_empty = masks_to_normalized_boxes(mask_logits)
    boxes = (boxes / mask_valid_ratio.repeat(1, 2)[:, None]).clamp(0.0, 1.0)
    return xyxy_to_cxcywh(boxes), non_empty
