"""Running a trained refinement: load its weights safely, and turn (image, trimap) or
(image, binary mask) into an alpha matte at the image's size.

The refinement works at most at ``resolution`` pixels on the longer side (larger images are
scaled down, the predicted alpha scaled back up) and on sizes padded to a multiple of 8.
"""
import logging
import os
from typing import Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .refiner import SIZE_DIVISOR, MattingRefiner
from .trimap import BACKGROUND, FOREGROUND, clamp_known, trimap_from_mask, unknown_region

logger = logging.getLogger(__name__)


def load_refiner(path: str, device: str = "cpu") -> MattingRefiner:
    """The refinement saved by `training.train_refiner` (read with ``weights_only=True``: no code
    runs); clear errors for a missing file or one that is not a refinement checkpoint."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"matting refiner weights {path} do not exist; train them with "
                                "tools/train_matting.py")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or not {"state_dict", "config"} <= set(checkpoint):
        raise ValueError(f"{path} is not a matting refiner checkpoint (expected the keys "
                         "'state_dict' and 'config' written by tools/train_matting.py)")
    model = MattingRefiner(**checkpoint["config"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(device).eval()


def _working_size(height: int, width: int, resolution: int):
    scale = min(1.0, resolution / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


@torch.no_grad()
def refine(model: MattingRefiner, image_rgb: np.ndarray, trimap: np.ndarray, resolution: int = 512,
           clamp_foreground: bool = True) -> np.ndarray:
    """(H, W) float32 alpha of an (H, W, 3) uint8 RGB image and its (H, W) trimap (0 / 128 / 255,
    with an unknown region). The trimap's background stays 0; its foreground stays 1 when
    ``clamp_foreground`` (a trimap the user trusts), else the refinement's estimate is kept there
    (a trimap from a coarse mask, whose inside may have holes or semi-transparent parts)."""
    unknown_region(trimap, where="trimap given to the matting refiner")
    height, width = trimap.shape
    work_h, work_w = _working_size(height, width, resolution)
    small_image = cv2.resize(image_rgb, (work_w, work_h), interpolation=cv2.INTER_AREA)
    small_trimap = cv2.resize(trimap, (work_w, work_h), interpolation=cv2.INTER_NEAREST)
    pad_h, pad_w = (-work_h) % SIZE_DIVISOR, (-work_w) % SIZE_DIVISOR
    device = next(model.parameters()).device
    image = torch.from_numpy(np.ascontiguousarray(small_image)).to(device).permute(2, 0, 1)[None].float() / 255
    image = F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")
    trimap_tensor = F.pad(torch.from_numpy(small_trimap).to(device)[None], (0, pad_w, 0, pad_h),
                          value=BACKGROUND)
    prior = None
    if model.prior == "closed_form":  # pymatting's closed-form alpha, which the network corrects
        from .peers import closed_form_alpha

        prior = torch.from_numpy(closed_form_alpha(small_image, small_trimap)).to(device)[None]
        prior = F.pad(prior, (0, pad_w, 0, pad_h), value=0.0)
    alpha = model(image, trimap_tensor, prior)[0, :work_h, :work_w].float().cpu().numpy()
    if (work_h, work_w) != (height, width):
        alpha = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LINEAR)
    if clamp_foreground:
        return clamp_known(alpha, trimap)
    alpha = np.array(alpha, np.float32, copy=True)
    alpha[trimap == BACKGROUND] = 0.0
    return alpha


def alpha_from_mask(model: MattingRefiner, image_rgb: np.ndarray, mask: np.ndarray, band: int,
                    resolution: int = 512, where: Optional[str] = None) -> np.ndarray:
    """(H, W) alpha of the object a binary mask selects: trimap of ``band`` pixels around the mask,
    then `refine` (its inside not clamped). An empty mask gives an all-zero alpha and a warning
    naming ``where`` (e.g. the prompt), not an error."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        logger.warning("%s: the mask is empty (the prompt selected nothing); its alpha is all zero",
                       where or "matting")
        return np.zeros(mask.shape, np.float32)
    trimap = trimap_from_mask(mask, band)
    if mask.all() or not (trimap == 128).any():
        logger.warning("%s: the mask covers the whole image; its alpha is the mask", where or "matting")
        return mask.astype(np.float32)
    return refine(model, image_rgb, trimap, resolution, clamp_foreground=False)


__all__ = ["FOREGROUND", "alpha_from_mask", "load_refiner", "refine"]
