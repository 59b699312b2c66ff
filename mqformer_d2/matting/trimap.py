"""Trimaps: the known background (0), the known foreground (255) and the unknown band (128) that a
matting method fills in.

Two sources: a binary mask (the prompted object's mask from MQ-Former, or a user's), where the
unknown region is a band of ``band`` pixels on each side of the mask's boundary; and a ground-truth
alpha matte, where it is every pixel whose alpha is strictly between 0 and 1, widened by
``dilation`` pixels (the Composition-1k convention of dilating the transition region).
"""
import cv2
import numpy as np

BACKGROUND, UNKNOWN, FOREGROUND = 0, 128, 255


def _disk(radius: int) -> np.ndarray:
    """A (2r+1, 2r+1) elliptic structuring element (a disk of ``radius`` pixels)."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def trimap_from_mask(mask: np.ndarray, band: int) -> np.ndarray:
    """(H, W) uint8 trimap of a binary mask: unknown within ``band`` pixels of its boundary
    (the mask dilated minus the mask eroded), foreground inside, background outside. A mask
    thinner than the band keeps its innermost pixels as foreground.

    Args:
        mask: (H, W) bool or {0, 1} array.
        band: width in pixels of the unknown band on each side of the boundary (>= 1).
    """
    if band < 1:
        raise ValueError(f"trimap band must be at least 1 pixel, got {band}")
    mask = np.asarray(mask).astype(np.uint8)
    dilated = cv2.dilate(mask, _disk(band))
    eroded = cv2.erode(mask, _disk(band), borderType=cv2.BORDER_REPLICATE)
    if mask.any() and not eroded.any():
        # a mask thinner than the band: keep its innermost pixels as foreground, since
        # trimap-based matting needs some known foreground
        distance = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
        eroded = (distance >= distance.max()).astype(np.uint8)
    trimap = np.full(mask.shape, UNKNOWN, np.uint8)
    trimap[dilated == 0] = BACKGROUND
    trimap[eroded == 1] = FOREGROUND
    return trimap


def trimap_from_alpha(alpha: np.ndarray, dilation: int) -> np.ndarray:
    """(H, W) uint8 trimap of an alpha matte in [0, 1]: unknown where 0 < alpha < 1, dilated by
    ``dilation`` pixels (0 = not dilated); foreground where alpha is 1, background where it is 0."""
    alpha = np.asarray(alpha, np.float32)
    transition = ((alpha > 0) & (alpha < 1)).astype(np.uint8)
    if dilation > 0:
        transition = cv2.dilate(transition, _disk(dilation))
    trimap = np.where(alpha >= 0.5, FOREGROUND, BACKGROUND).astype(np.uint8)
    trimap[transition == 1] = UNKNOWN
    return trimap


def unknown_region(trimap: np.ndarray, where: str = "trimap") -> np.ndarray:
    """(H, W) bool mask of the trimap's unknown pixels; a ValueError naming ``where`` when the
    trimap has none (nothing for a matting method to estimate) or has values other than
    0 / 128 / 255."""
    trimap = np.asarray(trimap)
    values = np.unique(trimap)
    unexpected = sorted(set(values.tolist()) - {BACKGROUND, UNKNOWN, FOREGROUND})
    if unexpected:
        raise ValueError(f"{where}: a trimap holds only 0 (background), 128 (unknown) and 255 "
                         f"(foreground); found also {unexpected[:5]}")
    unknown = trimap == UNKNOWN
    if not unknown.any():
        raise ValueError(f"{where}: the trimap has no unknown (128) pixel, so there is nothing to "
                         "matte; widen its unknown band")
    return unknown


def clamp_known(alpha: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """``alpha`` with the trimap's known pixels set to 0 / 1 (a copy)."""
    alpha = np.array(alpha, np.float32, copy=True)
    alpha[trimap == BACKGROUND] = 0.0
    alpha[trimap == FOREGROUND] = 1.0
    return alpha
