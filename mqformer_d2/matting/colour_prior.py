"""A sampling-based first guess of the alpha matte, computed inside the refinement's forward pass.

Every pixel ``I`` of the unknown region mixes a foreground colour ``F`` and a background colour
``B``: ``I = alpha F + (1 - alpha) B`` (the compositing equation). Nearby known pixels give
estimates of both: ``F`` is the mean colour of the trimap's foreground pixels around the pixel,
``B`` that of its background pixels, taken at the finest level of an image pyramid where any are
near (so a wide unknown band is filled from further away). The projection of ``I - B`` on
``F - B`` then estimates alpha, as sampling-based matting does. The refinement sees ``F``, ``B``
and this estimate beside the image and the trimap and predicts a correction of it: with flat or
smooth colours the estimate is already close, and the network learns where it is not (texture,
thin strands, mixed neighbourhoods).
"""
from typing import Tuple

import torch
import torch.nn.functional as F

PYRAMID_LEVELS = 5
NEIGHBOURHOOD = 5  # pixels, at each pyramid level


def fill_from_known(values: torch.Tensor, known: torch.Tensor, levels: int = PYRAMID_LEVELS) -> torch.Tensor:
    """(B, C, H, W) mean of ``values`` over the known pixels near each pixel.

    Args:
        values: (B, C, H, W) colours.
        known: (B, 1, H, W) 0/1 weights of the pixels to average.
    The mean is taken over a NEIGHBOURHOOD window at the finest pyramid level (2x pooling per
    level) where the window holds a known pixel; pixels with none at any level get 0.
    """
    weighted, weight, pyramid = values * known, known, []
    for _level in range(levels):
        pyramid.append((F.avg_pool2d(weighted, NEIGHBOURHOOD, 1, NEIGHBOURHOOD // 2),
                        F.avg_pool2d(weight, NEIGHBOURHOOD, 1, NEIGHBOURHOOD // 2)))
        if min(weighted.shape[-2:]) < 2:
            break
        weighted, weight = F.avg_pool2d(weighted, 2, ceil_mode=True), F.avg_pool2d(weight, 2, ceil_mode=True)
    estimate = None
    for total, count in reversed(pyramid):  # coarse to fine: a finer level wins where it has data
        current = total / count.clamp(min=1e-6)
        if estimate is not None:
            coarser = F.interpolate(estimate, size=total.shape[-2:], mode="bilinear", align_corners=False)
            current = torch.where(count > 1e-3, current, coarser)
        estimate = current
    return estimate


def colour_prior(image: torch.Tensor, background: torch.Tensor, foreground: torch.Tensor
                 ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(F estimate (B, 3, H, W), B estimate (B, 3, H, W), alpha estimate (B, 1, H, W) in [0, 1])
    of an RGB ``image`` in [0, 1] and the trimap's (B, 1, H, W) 0/1 ``background`` and
    ``foreground`` masks."""
    fg_colour = fill_from_known(image, foreground)
    bg_colour = fill_from_known(image, background)
    difference = fg_colour - bg_colour
    alpha = ((image - bg_colour) * difference).sum(1, keepdim=True) / (
        (difference ** 2).sum(1, keepdim=True) + 1e-3)
    return fg_colour, bg_colour, alpha.clamp(0, 1)
