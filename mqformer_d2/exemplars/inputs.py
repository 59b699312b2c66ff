"""One exemplar as the model reads it: an image in the model's input format and a box (or a mask)
on it, checked so that bad input fails with a message naming the exemplar."""
from typing import NamedTuple, Optional, Sequence

import torch
from torch import Tensor


class Exemplar(NamedTuple):
    """image: (3, H, W) uint8 in the model's input format (already resized like the model's inputs).
    box: (4,) float xyxy in that image's pixels. mask: optional (H, W) bool, the object's pixels
    (the read-out is then weighted by it); the box is then its tight box."""

    image: Tensor
    box: Tensor
    mask: Optional[Tensor] = None


def check_box(box: Sequence[float], height: int, width: int, name: str) -> Tensor:
    """A (4,) float xyxy box inside a height x width image, of positive area; else ValueError
    naming the exemplar (`name`)."""
    box = torch.as_tensor(box, dtype=torch.float32).flatten()
    if box.numel() != 4 or not bool(torch.isfinite(box).all()):
        raise ValueError(f"{name}: a box is 4 finite numbers x0, y0, x1, y1, got {box.tolist()}")
    x0, y0, x1, y1 = box.tolist()
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"{name}: box {box.tolist()} has zero area (x1 must exceed x0, y1 exceed y0)")
    # A tolerance of half a pixel: detectron2 boxes of objects touching the border end at W or H.
    if x0 < -0.5 or y0 < -0.5 or x1 > width + 0.5 or y1 > height + 0.5:
        raise ValueError(f"{name}: box {box.tolist()} lies outside its {width}x{height} (width x height) image")
    return box.clamp(min=0).minimum(torch.tensor([width, height, width, height], dtype=torch.float32))


def mask_box(mask: Tensor, name: str) -> Tensor:
    """The tight xyxy box (4,) of a (H, W) bool mask; ValueError naming the exemplar when it is empty."""
    if mask.dim() != 2:
        raise ValueError(f"{name}: a mask is (H, W), got shape {tuple(mask.shape)}")
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if len(xs) == 0:
        raise ValueError(f"{name}: the mask is empty (zero area)")
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)


def make_exemplar(image: Tensor, region, name: str) -> Exemplar:
    """An `Exemplar` of a model-format (3, H, W) uint8 image and `region`: 4 numbers (an xyxy box
    in the image's pixels) or an (H, W) mask (bool or 0/1)."""
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"{name}: the image must be (3, H, W), got shape {tuple(image.shape)}")
    height, width = image.shape[-2:]
    region = torch.as_tensor(region)
    if region.dim() == 2:
        if tuple(region.shape) != (height, width):
            raise ValueError(f"{name}: mask of shape {tuple(region.shape)} does not match its {height}x{width} image")
        mask = region.bool()
        return Exemplar(image, mask_box(mask, name), mask)
    return Exemplar(image, check_box(region, height, width, name))
