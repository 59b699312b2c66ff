"""Random scene layout: textured stuff regions, then shapes painted back to front with occlusion.

A scene is generated from a ``numpy.random.Generator`` only, so the same generator state gives the
same scene. Ground truth is exact: an object's ``visible_mask`` is the set of pixels painted with
its colour and not covered by a later object; objects that end up mostly hidden are removed from
the scene before painting (so no pixel belongs to an unannotated object).
"""
from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

import numpy as np

from .drawing import STUFF_TEXTURES, paint_flat_color, shape_mask, stuff_layout, to_uint8
from .vocabulary import STUFF_CLASSES, THING_CLASSES, THING_COLORS


@dataclass(frozen=True)
class SceneSpec:
    """How scenes are drawn. Sizes are diameters of the shape's circumscribed circle, in pixels."""

    image_size: int = 128
    min_objects: int = 2
    max_objects: int = 7
    min_diameter: float = 8.0
    max_diameter_fraction: float = 1 / 3  # of the image side
    min_visible_fraction: float = 0.5  # drop objects more than half hidden
    min_visible_pixels: int = 16
    min_stuff_regions: int = 2
    max_stuff_regions: int = 3
    combos: Tuple[Tuple[str, str], ...] = ()  # allowed (colour, shape) pairs


@dataclass
class ShapeObject:
    """One drawn object: its attributes and its full and visible masks (bool, H x W)."""

    shape: str
    color: str
    full_mask: np.ndarray
    visible_mask: np.ndarray = field(default=None)

    @property
    def category(self) -> int:
        """Contiguous class index of the shape."""
        return THING_CLASSES.index(self.shape)

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.visible_mask))

    @property
    def centroid(self) -> Tuple[float, float]:
        """(x, y) mean of the visible pixels."""
        ys, xs = np.nonzero(self.visible_mask)
        return float(xs.mean()), float(ys.mean())


@dataclass
class Scene:
    """A rendered image (uint8 RGB), its per-pixel stuff class map (contiguous index into
    ``STUFF_CLASSES``) and its objects, back to front."""

    image: np.ndarray
    stuff_map: np.ndarray
    objects: List[ShapeObject]

    def semantic_map(self) -> np.ndarray:
        """Per-pixel contiguous class index over things followed by stuff (uint8)."""
        labels = (self.stuff_map + len(THING_CLASSES)).astype(np.uint8)
        for obj in self.objects:
            labels[obj.visible_mask] = obj.category
        return labels


def random_stuff(rng: np.random.Generator, spec: SceneSpec) -> Tuple[np.ndarray, np.ndarray]:
    """Textured background: returns (float RGB image, stuff class map)."""
    size = spec.image_size
    num_regions = int(rng.integers(spec.min_stuff_regions, spec.max_stuff_regions + 1))
    classes = rng.choice(len(STUFF_CLASSES), size=num_regions, replace=False)
    stuff_map = classes[stuff_layout(rng, size, num_regions)]
    image = np.zeros((size, size, 3), np.float32)
    for class_index in classes:
        region = stuff_map == class_index
        image[region] = STUFF_TEXTURES[STUFF_CLASSES[class_index]](rng, size, size)[region]
    return image, stuff_map


def random_object(rng: np.random.Generator, spec: SceneSpec, diameter_range=None) -> ShapeObject:
    """One object of a random allowed (colour, shape), size (log-uniform), rotation and position
    (fully inside the image)."""
    color, shape = spec.combos[int(rng.integers(len(spec.combos)))]
    low, high = diameter_range or (spec.min_diameter, spec.max_diameter_fraction * spec.image_size)
    diameter = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    radius = diameter / 2
    center = rng.uniform(radius, spec.image_size - radius, size=2)
    angle = float(rng.uniform(0, 2 * np.pi))
    return ShapeObject(shape, color, shape_mask(shape, center, diameter, angle, spec.image_size))


def resolve_occlusion(objects: List[ShapeObject], spec: SceneSpec) -> List[ShapeObject]:
    """Set each object's visible mask (objects later in the list cover earlier ones) and remove,
    one at a time, the least visible object while any is mostly hidden or too small."""
    objects = list(objects)
    while objects:
        covered = np.zeros_like(objects[0].full_mask)
        fractions = [0.0] * len(objects)
        for index in range(len(objects) - 1, -1, -1):
            obj = objects[index]
            obj.visible_mask = obj.full_mask & ~covered
            covered |= obj.full_mask
            visible = np.count_nonzero(obj.visible_mask)
            enough = visible >= spec.min_visible_pixels
            full = max(np.count_nonzero(obj.full_mask), 1)
            fractions[index] = visible / full if enough else -1.0
        worst = int(np.argmin(fractions))
        if fractions[worst] >= spec.min_visible_fraction:
            break
        del objects[worst]
    return objects


def render(background: np.ndarray, stuff_map: np.ndarray, objects: Sequence[ShapeObject],
           rng: np.random.Generator) -> Scene:
    """Paint the objects back to front over the background."""
    image = background.copy()
    for obj in objects:
        paint_flat_color(image, obj.full_mask, THING_COLORS[obj.color], rng)
    return Scene(to_uint8(image), stuff_map, list(objects))


def random_scene(rng: np.random.Generator, spec: SceneSpec) -> Scene:
    """A full scene: stuff regions plus ``min_objects..max_objects`` (before occlusion culling)."""
    background, stuff_map = random_stuff(rng, spec)
    count = int(rng.integers(spec.min_objects, spec.max_objects + 1))
    objects = resolve_occlusion([random_object(rng, spec) for _ in range(count)], spec)
    return render(background, stuff_map, objects, rng)


def random_salient_scene(rng: np.random.Generator, spec: SceneSpec) -> Scene:
    """A foreground-segmentation scene: one large object (a quarter to two thirds of the image
    side) on stuff regions."""
    background, stuff_map = random_stuff(rng, spec)
    size = spec.image_size
    obj = random_object(rng, spec, diameter_range=(size / 4, size * 2 / 3))
    obj.visible_mask = obj.full_mask
    return render(background, stuff_map, [obj], rng)
