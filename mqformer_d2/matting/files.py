"""Reading and writing alpha mattes and trimaps, with errors that name the file at fault.

An alpha matte is a single-channel PNG (or any format cv2 reads) of 8 bits (0..255) or 16 bits
(0..65535); a trimap is a single-channel 8-bit image of 0 / 128 / 255. Both must have the size of
their image.
"""
import os
from typing import Optional, Tuple

import cv2
import numpy as np

from .trimap import unknown_region

_MAX_VALUE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def _read_single_channel(path: str, what: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path} does not exist")
    array = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ValueError(f"{what} {path} cannot be read as an image")
    if array.ndim != 2:
        raise ValueError(f"{what} {path} has {array.shape[2]} channels; it must be a single-channel "
                         "(grayscale) image")
    return array


def _check_size(array: np.ndarray, path: str, what: str, size: Optional[Tuple[int, int]]) -> None:
    if size is not None and tuple(array.shape) != tuple(size):
        raise ValueError(f"{what} {path} is {array.shape[1]}x{array.shape[0]} (width x height) but "
                         f"its image is {size[1]}x{size[0]}")


def read_alpha(path: str, size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """(H, W) float32 alpha in [0, 1] of an 8- or 16-bit single-channel file; ``size`` = the
    image's (H, W), checked when given."""
    array = _read_single_channel(path, "alpha matte")
    if array.dtype not in _MAX_VALUE:
        raise ValueError(f"alpha matte {path} has {array.dtype} pixels; it must be 8-bit (0..255) or "
                         "16-bit (0..65535) grayscale")
    _check_size(array, path, "alpha matte", size)
    return array.astype(np.float32) / _MAX_VALUE[array.dtype]


def read_trimap(path: str, size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """(H, W) uint8 trimap (0 / 128 / 255) with at least one unknown pixel; ``size`` checked."""
    array = _read_single_channel(path, "trimap")
    if array.dtype != np.uint8:
        raise ValueError(f"trimap {path} has {array.dtype} pixels; it must be 8-bit (0 / 128 / 255)")
    _check_size(array, path, "trimap", size)
    unknown_region(array, where=f"trimap {path}")
    return array


def alpha_to_uint8(alpha: np.ndarray) -> np.ndarray:
    """(H, W) float alpha in [0, 1] -> uint8 0..255 (rounded)."""
    return np.clip(np.round(np.asarray(alpha, np.float32) * 255.0), 0, 255).astype(np.uint8)


def write_png(path: str, array: np.ndarray) -> None:
    """Write an (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA uint8 array as PNG."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if array.ndim == 3:
        code = cv2.COLOR_RGB2BGR if array.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
        array = cv2.cvtColor(array, code)
    if not cv2.imwrite(path, array):
        raise OSError(f"could not write PNG {path}")


def read_rgb(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB image."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"image {path} does not exist or cannot be read")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
