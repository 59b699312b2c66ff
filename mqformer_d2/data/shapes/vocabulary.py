"""The benchmark's vocabulary: shape ("thing") classes, colours, textured "stuff" classes, id
spaces, and the open-vocabulary suite's datasets.

Id spaces (documented in docs/benchmark_shapes.md):

* contiguous class index (``category_id`` of the unified dataset dicts, the values of the semantic
  label PNGs): things first, ``0 .. len(THING_CLASSES) - 1``, then stuff;
* dataset (json) ids in the COCO instance / panoptic / detection jsons: contiguous index + 1, as
  in COCO;
* the SeginW-format suite uses 0-based contiguous category ids, as the real SeginW does.
"""
from dataclasses import dataclass
from typing import Dict, List, Tuple

THING_CLASSES: Tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon", "cross")

#: Flat object colours (RGB). Saturated, so that they differ from the muted stuff textures, but
#: green / blue / yellow objects do share hues with grass / water / sand.
THING_COLORS: Dict[str, Tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "green": (50, 195, 60),
    "blue": (45, 75, 220),
    "yellow": (235, 215, 45),
    "purple": (145, 60, 195),
    "orange": (240, 140, 30),
}
COLOR_NAMES: Tuple[str, ...] = tuple(THING_COLORS)

STUFF_CLASSES: Tuple[str, ...] = ("sky", "grass", "water", "sand")

ALL_CLASSES: Tuple[str, ...] = THING_CLASSES + STUFF_CLASSES

#: (colour, shape) pairs never drawn in the train / val / detection / foreground splits; the suite's
#: "ColorShapes" dataset is made of them only (compositional open-vocabulary transfer). A Latin
#: square: every shape and every colour is held out exactly once, so each still appears with the
#: five other colours / shapes.
HELD_OUT_COMBOS: Tuple[Tuple[str, str], ...] = (
    ("red", "star"),
    ("green", "hexagon"),
    ("blue", "cross"),
    ("yellow", "circle"),
    ("purple", "square"),
    ("orange", "triangle"),
)

IGNORE_LABEL = 255


def seen_combos() -> List[Tuple[str, str]]:
    """All (colour, shape) pairs the closed-vocabulary splits draw from."""
    return [
        (color, shape)
        for shape in THING_CLASSES
        for color in COLOR_NAMES
        if (color, shape) not in HELD_OUT_COMBOS
    ]


@dataclass(frozen=True)
class SuiteDataset:
    """One dataset of the SeginW-format open-vocabulary suite.

    ``label_by`` names the object attribute that decides an object's category: "color" (category
    names like "red object"), "shape" ("circle") or "color_shape" ("red circle"). ``combos`` are the
    (colour, shape) pairs its images are drawn from.
    """

    name: str
    label_by: str
    combos: Tuple[Tuple[str, str], ...]

    @property
    def class_names(self) -> List[str]:
        """Category names, in category-id order (ids are 0-based and contiguous)."""
        if self.label_by == "color":
            return [f"{color} object" for color in COLOR_NAMES]
        if self.label_by == "shape":
            return list(THING_CLASSES)
        if self.label_by == "color_shape":
            return [f"{color} {shape}" for color, shape in self.combos]
        raise ValueError(f"unknown label_by {self.label_by!r} for suite dataset {self.name}")

    def category_of(self, color: str, shape: str) -> int:
        """0-based category id of an object of this colour and shape."""
        if self.label_by == "color":
            return COLOR_NAMES.index(color)
        if self.label_by == "shape":
            return THING_CLASSES.index(shape)
        return self.combos.index((color, shape))


SUITE: Tuple[SuiteDataset, ...] = (
    SuiteDataset("Colors", "color", tuple(seen_combos())),
    SuiteDataset("Shapes", "shape", tuple(seen_combos())),
    SuiteDataset("ColorShapes", "color_shape", HELD_OUT_COMBOS),
)
