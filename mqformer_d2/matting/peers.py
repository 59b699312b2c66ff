"""The classical peers of the refinement, from pymatting: closed-form matting (Levin, Lischinski
and Weiss 2008) and KNN matting (Chen, Li and Tang 2013), both driven by a trimap. pymatting's
first import compiles its kernels with numba (tens of seconds once; cached afterwards)."""
import numpy as np

from .trimap import clamp_known, unknown_region


def _inputs(image_rgb: np.ndarray, trimap: np.ndarray):
    unknown_region(trimap, where="trimap given to pymatting")
    if not (trimap == 255).any() or not (trimap == 0).any():
        raise ValueError("trimap given to pymatting: it needs both known foreground (255) and known "
                         "background (0) pixels")
    return image_rgb.astype(np.float64) / 255.0, trimap.astype(np.float64) / 255.0


def closed_form_alpha(image_rgb: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """(H, W) float32 alpha by pymatting's ``estimate_alpha_cf`` (known pixels kept)."""
    from pymatting import estimate_alpha_cf

    alpha = estimate_alpha_cf(*_inputs(image_rgb, trimap))
    return clamp_known(np.clip(alpha, 0, 1), trimap)


def knn_alpha(image_rgb: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """(H, W) float32 alpha by pymatting's ``estimate_alpha_knn`` (known pixels kept)."""
    from pymatting import estimate_alpha_knn

    alpha = estimate_alpha_knn(*_inputs(image_rgb, trimap))
    return clamp_known(np.clip(alpha, 0, 1), trimap)
