"""Objects with soft boundaries for the matting split: an alpha matte per shape, drawn at 4x
resolution and averaged down (so edges have exact fractional coverage), then made harder to matte
by four effects, each drawn with its own probability:

- ``blur``: the whole matte blurred (out-of-focus edges, Gaussian sigma 0.7..2 px);
- ``holes``: 1..3 round holes inside the shape (alpha 0 there);
- ``transparent``: a smooth blob of the shape made semi-transparent (alpha down to 0.3..0.7);
- ``strands``: 6..20 thin curved strands (0.5..1 px wide, opacity 0.5..1) growing out of the
  boundary, like hair or fur.

The image is then ``alpha * F + (1 - alpha) * B`` with the 8-bit alpha that is written to disk, so
the stored matte is exactly the one that made the image.
"""
from dataclasses import dataclass, field
from typing import List, Tuple

import cv2
import numpy as np

from .drawing import shape_mask, smooth_noise

SUPERSAMPLING = 4
EFFECT_PROBABILITIES = {"blur": 0.5, "holes": 0.4, "transparent": 0.4, "strands": 0.6}


@dataclass
class SoftObject:
    """A shape with its (H, W) float32 alpha in [0, 1] and the effects drawn on it."""

    shape: str
    color: str
    alpha: np.ndarray
    effects: List[str] = field(default_factory=list)


def _coverage(shape: str, center: np.ndarray, diameter: float, angle: float, size: int) -> np.ndarray:
    """(size, size) fraction of each pixel covered by the shape (area-averaged 4x raster)."""
    big = shape_mask(shape, center * SUPERSAMPLING, diameter * SUPERSAMPLING, angle,
                     size * SUPERSAMPLING).astype(np.float32)
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)


def _holes(rng, alpha, center, diameter, size) -> np.ndarray:
    """Multiply ``alpha`` by the complement of 1..3 anti-aliased discs near the shape's centre."""
    big = np.zeros((size * SUPERSAMPLING,) * 2, np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        offset = rng.uniform(-0.2, 0.2, size=2) * diameter
        radius = rng.uniform(0.06, 0.13) * diameter
        cx, cy = (center + offset) * SUPERSAMPLING
        cv2.circle(big, (int(cx), int(cy)), max(int(radius * SUPERSAMPLING), 2), 1, -1)
    hole = cv2.resize(big.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return alpha * (1.0 - hole)


def _transparency(rng, alpha, size) -> np.ndarray:
    """Lower alpha smoothly inside a random blob to a floor of 0.3..0.7."""
    floor = rng.uniform(0.3, 0.7)
    blob = np.clip(smooth_noise(rng, size, size, max(size // 6, 2)), 0, 1)
    return alpha * (1.0 - (1.0 - floor) * blob)


def _strands(rng, alpha, center, diameter, size) -> np.ndarray:
    """``alpha`` maxed with 6..20 thin curves leaving the boundary outwards."""
    big = np.zeros((size * SUPERSAMPLING,) * 2, np.float32)
    edge_y, edge_x = np.nonzero((alpha > 0.3) & (alpha < 0.7))
    if edge_x.size == 0:
        return alpha
    for _ in range(int(rng.integers(6, 21))):
        k = int(rng.integers(edge_x.size))
        start = np.array([edge_x[k], edge_y[k]], np.float64) + 0.5
        direction = np.arctan2(start[1] - center[1], start[0] - center[0]) + rng.uniform(-0.5, 0.5)
        length, bend = rng.uniform(0.15, 0.4) * diameter, rng.uniform(-0.08, 0.08)
        points = [start]
        for _step in range(12):
            direction += bend
            points.append(points[-1] + length / 12 * np.array([np.cos(direction), np.sin(direction)]))
        polyline = np.round(np.array(points) * SUPERSAMPLING).astype(np.int32)
        cv2.polylines(big, [polyline], False, float(rng.uniform(0.5, 1.0)),
                      thickness=int(rng.integers(2, 5)), lineType=cv2.LINE_AA)
    strands = cv2.resize(np.clip(big, 0, 1), (size, size), interpolation=cv2.INTER_AREA)
    return np.maximum(alpha, strands)


def soft_alpha(rng: np.random.Generator, shape: str, center_xy, diameter: float, angle: float,
               image_size: int) -> Tuple[np.ndarray, List[str]]:
    """(alpha (H, W) float32 in [0, 1], effects drawn) of one shape; see the module docstring."""
    center = np.asarray(center_xy, np.float64)
    alpha = _coverage(shape, center, diameter, angle, image_size)
    effects = [name for name, p in EFFECT_PROBABILITIES.items() if rng.random() < p]
    if "holes" in effects:
        alpha = _holes(rng, alpha, center, diameter, image_size)
    if "transparent" in effects:
        alpha = _transparency(rng, alpha, image_size)
    if "blur" in effects:
        alpha = cv2.GaussianBlur(alpha, (0, 0), rng.uniform(0.7, 2.0))
    if "strands" in effects:
        alpha = _strands(rng, alpha, center, diameter, image_size)
    return np.clip(alpha, 0.0, 1.0).astype(np.float32), effects


def composite(foreground: np.ndarray, background: np.ndarray, alpha8: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) image ``alpha * F + (1 - alpha) * B`` of float RGB images, with the 8-bit
    alpha (the one written to disk)."""
    alpha = (alpha8.astype(np.float32) / 255.0)[..., None]
    return np.clip(np.round(alpha * foreground + (1.0 - alpha) * background), 0, 255).astype(np.uint8)
