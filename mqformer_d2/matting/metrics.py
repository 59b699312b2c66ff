"""The four alpha-matting errors of Rhemann et al. (CVPR 2009), as the Composition-1k and
Distinctions-646 evaluations compute them. Alphas are float arrays in [0, 1] (an 8-bit matte is
divided by 255 first); each error is summed (SAD, Grad, Conn) or averaged (MSE) over a region, the
trimap's unknown pixels or the whole image.

- SAD: sum of |pred - gt|, reported in thousands.
- MSE: mean of (pred - gt)^2 over the region's pixels.
- Grad: sum of (|grad pred| - |grad gt|)^2, reported in thousands. The gradients are convolutions
  with first-derivative-of-Gaussian filters of sigma 1.4 (the kernel G(y) G'(x) sampled on integer
  offsets up to ceil(sigma sqrt(-2 ln(sqrt(2 pi) sigma 0.01))) = 4 pixels, scaled to unit L2 norm;
  its transpose for y; borders replicated).
- Conn: for thresholds t = 0, 0.1, ..., 1, the pixels where both mattes are >= t and that belong to
  the largest 4-connected component of that set are "connected at t"; a pixel's level l is the last
  threshold before the first one at which it is not connected (1 if it always is). With
  d = alpha - l, phi = 1 - d where d >= theta (0.15), else 1; Conn is the sum of
  |phi_pred^p - phi_gt^p| with p = 1, in thousands.
"""
import math
from typing import Dict

import numpy as np
from scipy import ndimage

GRADIENT_SIGMA = 1.4
CONNECTIVITY_STEP = 0.1
CONNECTIVITY_THETA = 0.15
CONNECTIVITY_P = 1.0
_FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)
METRIC_NAMES = ("SAD", "MSE", "Grad", "Conn")


def _check_pair(pred: np.ndarray, gt: np.ndarray, region: np.ndarray) -> None:
    if pred.shape != gt.shape or region.shape != gt.shape:
        raise ValueError(f"matting metrics: prediction {pred.shape}, ground truth {gt.shape} and "
                         f"region {region.shape} must have the same (H, W) shape")


def sad(pred: np.ndarray, gt: np.ndarray, region: np.ndarray) -> float:
    """Sum of absolute differences over the bool ``region``, in thousands."""
    _check_pair(pred, gt, region)
    return float(np.abs(pred - gt)[region].sum() / 1000.0)


def mse(pred: np.ndarray, gt: np.ndarray, region: np.ndarray) -> float:
    """Mean squared difference over the bool ``region`` (0 for an empty region)."""
    _check_pair(pred, gt, region)
    count = int(region.sum())
    return float(((pred - gt) ** 2)[region].sum() / count) if count else 0.0


def gaussian_derivative_kernel(sigma: float = GRADIENT_SIGMA) -> np.ndarray:
    """(K, K) filter of d/dx: G(y) * G'(x) on integer offsets, scaled to unit L2 norm."""
    half = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * 1e-2)))
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-offsets ** 2 / (2 * sigma ** 2)) / (sigma * math.sqrt(2 * math.pi))
    derivative = -offsets * gauss / sigma ** 2
    kernel = np.outer(gauss, derivative)  # rows: y, columns: x
    return kernel / np.sqrt((kernel ** 2).sum())


def gradient_magnitude(alpha: np.ndarray, sigma: float = GRADIENT_SIGMA) -> np.ndarray:
    """(H, W) magnitude of the Gaussian-derivative gradient of ``alpha`` (borders replicated)."""
    kernel = gaussian_derivative_kernel(sigma)
    alpha = np.asarray(alpha, np.float64)
    gx = ndimage.convolve(alpha, kernel, mode="nearest")
    gy = ndimage.convolve(alpha, kernel.T, mode="nearest")
    return np.sqrt(gx ** 2 + gy ** 2)


def gradient_error(pred: np.ndarray, gt: np.ndarray, region: np.ndarray) -> float:
    """Sum of squared gradient-magnitude differences over ``region``, in thousands."""
    _check_pair(pred, gt, region)
    difference = gradient_magnitude(pred) - gradient_magnitude(gt)
    return float((difference ** 2)[region].sum() / 1000.0)


def _largest_component(binary: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of ``binary`` (all False when it is empty)."""
    labels, count = ndimage.label(binary, structure=_FOUR_CONNECTED)
    if count == 0:
        return np.zeros_like(binary)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def connectivity_levels(pred: np.ndarray, gt: np.ndarray, step: float = CONNECTIVITY_STEP) -> np.ndarray:
    """(H, W) level l of every pixel: the last threshold before it leaves the largest component of
    {pred >= t and gt >= t}; 1 for pixels that never leave it."""
    # rounded so that the thresholds are the decimals 0.1, 0.2, ... and not 0.30000000000000004
    thresholds = np.round(np.arange(0, 1 + step / 2, step), 10)
    levels = np.full(gt.shape, -1.0)
    for previous, threshold in zip(thresholds[:-1], thresholds[1:]):
        connected = _largest_component((pred >= threshold) & (gt >= threshold))
        levels[(levels == -1) & ~connected] = previous
    levels[levels == -1] = 1.0
    return levels


def connectivity_error(pred: np.ndarray, gt: np.ndarray, region: np.ndarray,
                       step: float = CONNECTIVITY_STEP, theta: float = CONNECTIVITY_THETA,
                       p: float = CONNECTIVITY_P) -> float:
    """Rhemann et al.'s connectivity error over ``region``, in thousands."""
    _check_pair(pred, gt, region)
    levels = connectivity_levels(pred, gt, step)

    def phi(alpha):
        distance = alpha - levels
        return 1.0 - distance * (distance >= theta)

    return float(np.abs(phi(pred) ** p - phi(gt) ** p)[region].sum() / 1000.0)


def matting_errors(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> Dict[str, float]:
    """All four errors over the trimap's unknown pixels (``<metric>``) and over the whole image
    (``<metric>_whole``). ``pred``, ``gt``: (H, W) floats in [0, 1]; ``trimap``: (H, W) uint8 with
    128 = unknown."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    regions = {"": np.asarray(trimap) == 128, "_whole": np.ones(gt.shape, bool)}
    functions = {"SAD": sad, "MSE": mse, "Grad": gradient_error, "Conn": connectivity_error}
    return {name + suffix: functions[name](pred, gt, region)
            for suffix, region in regions.items() for name in METRIC_NAMES}
