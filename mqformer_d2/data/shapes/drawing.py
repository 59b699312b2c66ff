"""Pixel-level drawing: shape outlines rasterized into exact binary masks, smooth noise, and the
textures of the stuff classes. No anti-aliasing, so a mask is exactly the pixels that were painted.
"""
from typing import Callable, Dict

import cv2
import numpy as np

from .vocabulary import STUFF_CLASSES

_SUBPIXEL_BITS = 4  # cv2.fillPoly fixed-point precision: vertices are placed to 1/16 px


def _regular_polygon(num_vertices: int, start_angle: float) -> np.ndarray:
    angles = start_angle + np.arange(num_vertices) * (2 * np.pi / num_vertices)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _star_outline(points: int = 5, inner_ratio: float = 0.45) -> np.ndarray:
    outline = _regular_polygon(2 * points, -np.pi / 2)
    outline[1::2] *= inner_ratio
    return outline


def _cross_outline(arm_half_width: float = 0.3) -> np.ndarray:
    w = arm_half_width
    quarter = [(w, 1.0), (w, w), (1.0, w)]  # one arm's corner, rotated four times below
    outline = []
    for k in range(4):
        c, s = np.cos(-k * np.pi / 2), np.sin(-k * np.pi / 2)  # clockwise, to keep the order
        outline += [(c * x - s * y, s * x + c * y) for x, y in quarter]
    outline = np.asarray(outline)
    return outline / np.linalg.norm(outline, axis=1).max()


#: Unit outlines (circumscribed radius 1, centred at the origin), one per shape class.
SHAPE_OUTLINES: Dict[str, np.ndarray] = {
    "circle": _regular_polygon(48, 0.0),
    "square": _regular_polygon(4, np.pi / 4),
    "triangle": _regular_polygon(3, -np.pi / 2),
    "star": _star_outline(),
    "hexagon": _regular_polygon(6, 0.0),
    "cross": _cross_outline(),
}


def shape_mask(shape: str, center_xy, diameter: float, angle: float, image_size: int) -> np.ndarray:
    """Rasterize one shape into a (image_size, image_size) bool mask.

    Args:
        shape: a key of ``SHAPE_OUTLINES``.
        center_xy: (x, y) centre in pixels.
        diameter: diameter of the shape's circumscribed circle, in pixels.
        angle: rotation in radians.
    """
    if shape not in SHAPE_OUTLINES:
        raise KeyError(f"unknown shape {shape!r}; known: {sorted(SHAPE_OUTLINES)}")
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, -s], [s, c]])
    vertices = SHAPE_OUTLINES[shape] @ rotation.T * (diameter / 2) + np.asarray(center_xy)
    fixed_point = np.round(vertices * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    mask = np.zeros((image_size, image_size), np.uint8)
    cv2.fillPoly(mask, [fixed_point], 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    return mask.astype(bool)


def smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Zero-mean, roughly unit-variance noise varying smoothly over about ``cell`` pixels."""
    grid = rng.standard_normal((height // cell + 2, width // cell + 2)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def _pixel_noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    return rng.standard_normal((height, width)).astype(np.float32)


def _sky(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Pale blue, lighter towards the bottom, with soft white clouds."""
    base = np.array([130, 185, 235], np.float32)
    gradient = np.linspace(-12, 12, h, dtype=np.float32)[:, None, None]
    clouds = np.clip(smooth_noise(rng, h, w, 24), 0, None)[..., None] * 45
    return base + gradient + clouds


def _grass(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Dark green with vertical blade-like streaks."""
    base = np.array([70, 135, 55], np.float32)
    streaks = cv2.blur(_pixel_noise(rng, h, w), (1, 7))[..., None] * 45
    patches = smooth_noise(rng, h, w, 16)[..., None] * np.array([8, 14, 6], np.float32)
    return base + streaks + patches


def _water(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Deep blue with wavy horizontal ripples."""
    base = np.array([35, 85, 150], np.float32)
    ys = np.arange(h, dtype=np.float32)[:, None]
    phase = 2 * np.pi * ys / 6.0 + 2.5 * smooth_noise(rng, h, w, 20)
    ripples = np.sin(phase)[..., None] * np.array([12, 18, 22], np.float32)
    return base + ripples


def _sand(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Beige with fine speckle and gentle dunes."""
    base = np.array([205, 180, 130], np.float32)
    speckle = _pixel_noise(rng, h, w)[..., None] * 14
    dunes = smooth_noise(rng, h, w, 32)[..., None] * 10
    return base + speckle + dunes


STUFF_TEXTURES: Dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "sky": _sky,
    "grass": _grass,
    "water": _water,
    "sand": _sand,
}
assert tuple(STUFF_TEXTURES) == STUFF_CLASSES, "every stuff class needs a texture"


def stuff_layout(rng: np.random.Generator, image_size: int, num_regions: int) -> np.ndarray:
    """Irregular partition of the image into ``num_regions`` regions (int map of region indices),
    the argmax of smooth random fields, so boundaries are curvy and regions are blob-like."""
    fields = np.stack([smooth_noise(rng, image_size, image_size, 40) for _ in range(num_regions)])
    return fields.argmax(axis=0)


def paint_flat_color(image: np.ndarray, mask: np.ndarray, rgb, rng: np.random.Generator) -> None:
    """Paint ``mask`` of the float (H, W, 3) ``image`` in place with ``rgb`` plus slight per-object
    tint and per-pixel grain (so objects are not perfectly flat)."""
    tint = rng.uniform(-12, 12, size=3)
    grain = rng.normal(0, 4, size=(np.count_nonzero(mask), 1))
    image[mask] = np.asarray(rgb, np.float32) + tint + grain


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Clip a float image to [0, 255] and convert it to uint8."""
    return np.clip(np.round(image), 0, 255).astype(np.uint8)
