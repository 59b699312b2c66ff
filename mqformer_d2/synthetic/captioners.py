"""Captioners for the synthetic caption engine (paper 3.4): several texts per object.

`captions.synthesize_captions` calls a `Captioner` once per image with the image and its unified
annotations (docs/data_format.md), each with an added ``class_name``, and writes the returned texts
into the annotations' ``texts`` (the mapper draws one per load).

* `BuiltinCaptioner` needs no model: the class name plus attributes measured from the image and the
  layout (dominant colour, relative size, position, relation to the nearest object); a caption
  states an attribute only when the measurement supports it.
* `CallableCaptioner` adapts any image-to-text model given as a callable
  ``fn(crop: np.ndarray (h, w, 3) RGB uint8, box: (4,) XYXY absolute) -> list[str]``.
* `load_captioner("builtin" | "module:attr")`: ``attr`` is a `Captioner` subclass (built without
  arguments), a `Captioner` instance, or a callable taken as ``fn`` above.
"""
import abc
import importlib
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import cv2
import numpy as np
from detectron2.structures import BoxMode

from ..data.masks import decode_segmentation

# Hue ranges (degrees, [start, end)) of the chromatic colour names, in HSV.
_HUE_NAMES = ((0, 15, "red"), (15, 45, "orange"), (45, 70, "yellow"), (70, 165, "green"), (165, 195, "cyan"),
              (195, 255, "blue"), (255, 300, "purple"), (300, 345, "pink"), (345, 361, "red"))
# Pixels below this saturation (0..1) are achromatic: black / gray / white by value.
_MIN_SATURATION = 0.25
_BLACK_VALUE, _WHITE_VALUE = 0.2, 0.85
# The dominant colour must cover at least this fraction of the object's pixels to be named.
_MIN_COLOR_SHARE = 0.6
# "large" / "small": area at least / at most this factor times the median area of the other objects.
_SIZE_FACTOR = 2.0


class Captioner(abc.ABC):
    """Texts for the objects of one image."""

    @abc.abstractmethod
    def caption(self, image: np.ndarray, annotations: Sequence[dict]) -> List[List[str]]:
        """
        Args:
            image: (H, W, 3) uint8 RGB.
            annotations: the image's unified annotations (``bbox``, ``bbox_mode``, optional
                ``segmentation``), each with ``class_name`` (str).

        Returns:
            one list of captions per annotation, in order (possibly empty).
        """


def color_names(pixels: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 RGB pixels -> (N,) colour names from a small HSV table."""
    if len(pixels) == 0:
        return np.zeros(0, dtype=object)
    hsv = cv2.cvtColor(pixels.reshape(-1, 1, 3).astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV).reshape(-1, 3)
    hue, saturation, value = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    names = np.full(len(pixels), "gray", dtype=object)
    chromatic = (saturation >= _MIN_SATURATION) & (value >= _BLACK_VALUE)
    for start, end, name in _HUE_NAMES:
        names[chromatic & (hue >= start) & (hue < end)] = name
    names[~chromatic & (value < _BLACK_VALUE)] = "black"
    names[~chromatic & (value >= _WHITE_VALUE)] = "white"
    return names


def dominant_color(pixels: np.ndarray) -> Optional[str]:
    """The colour name of most pixels (N, 3), or None when no name covers _MIN_COLOR_SHARE of them."""
    names = color_names(pixels)
    if len(names) == 0:
        return None
    values, counts = np.unique(names.astype(str), return_counts=True)
    best = int(counts.argmax())
    return str(values[best]) if counts[best] >= _MIN_COLOR_SHARE * len(names) else None


@dataclass
class ObjectFacts:
    """What the built-in captioner measured about one object."""

    name: str
    box: np.ndarray  # (4,) XYXY absolute
    area: float
    color: Optional[str]

    @property
    def noun(self) -> str:
        return f"{self.color} {self.name}" if self.color else self.name


def measure(image: np.ndarray, annotation: dict) -> ObjectFacts:
    """Box, area and colour of one annotation. The colour is read from the mask's pixels only: a
    box-only object gets no colour (its box also holds background)."""
    height, width = image.shape[:2]
    box = np.array(BoxMode.convert(list(annotation["bbox"]), annotation["bbox_mode"], BoxMode.XYXY_ABS), float)
    color, area = None, float((box[2] - box[0]) * (box[3] - box[1]))
    if "segmentation" in annotation:
        mask = decode_segmentation(annotation["segmentation"], height, width).astype(bool)
        area = float(mask.sum())
        color = dominant_color(image[mask])
    return ObjectFacts(annotation["class_name"], box, area, color)


def size_word(me: ObjectFacts, others: Sequence[ObjectFacts]) -> Optional[str]:
    """"large" / "small" when the area is at least _SIZE_FACTOR times above / below the other objects' median."""
    if not others:
        return None
    median = float(np.median([o.area for o in others]))
    if me.area >= _SIZE_FACTOR * median:
        return "large"
    if me.area * _SIZE_FACTOR <= median:
        return "small"
    return None


def position_phrase(box: np.ndarray, height: int, width: int) -> str:
    """Where the box centre lies in a 3 x 3 grid of the image: "on the left", "in the top right",
    "in the centre", ..."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    column = "left" if cx < width / 3 else "right" if cx > 2 * width / 3 else ""
    row = "top" if cy < height / 3 else "bottom" if cy > 2 * height / 3 else ""
    if row and column:
        return f"in the {row} {column}"
    if column:
        return f"on the {column}"
    return f"at the {row}" if row else "in the centre"


def relation_phrase(me: ObjectFacts, others: Sequence[ObjectFacts]) -> Optional[str]:
    """Relation to the nearest object (box centres), when the boxes are apart along an axis:
    "left of the blue circle", "right of ...", "above ...", "below ..."."""
    if not others:
        return None
    centre = (me.box[:2] + me.box[2:]) / 2
    nearest = min(others, key=lambda o: float(np.linalg.norm((o.box[:2] + o.box[2:]) / 2 - centre)))
    a, b = me.box, nearest.box
    tests = (("left of", a[2] <= b[0]), ("right of", a[0] >= b[2]), ("above", a[3] <= b[1]), ("below", a[1] >= b[3]))
    for words, holds in tests:
        if holds:
            return f"{words} the {nearest.noun}"
    return None


class BuiltinCaptioner(Captioner):
    """Captions from measured facts: "the red circle", "the red circle on the left", "the red circle
    left of the blue square", "the large red circle", ... (only facts that hold; at most
    `max_captions`, the shortest first)."""

    def __init__(self, max_captions: int = 5):
        self.max_captions = max_captions

    def caption(self, image: np.ndarray, annotations: Sequence[dict]) -> List[List[str]]:
        facts = [measure(image, ann) for ann in annotations]
        height, width = image.shape[:2]
        captions = []
        for index, me in enumerate(facts):
            others = facts[:index] + facts[index + 1:]
            captions.append(self._captions(me, size_word(me, others), position_phrase(me.box, height, width),
                                           relation_phrase(me, others)))
        return captions

    def _captions(self, me: ObjectFacts, size: Optional[str], position: str, relation: Optional[str]) -> List[str]:
        sized = f"{size} {me.noun}" if size else None
        candidates = [
            f"the {me.noun}",
            f"the {me.noun} {position}",
            f"the {me.noun} {relation}" if relation else None,
            f"the {sized}" if sized else None,
            f"the {sized} {position}" if sized else None,
            f"the {me.noun} {position}, {relation}" if relation else None,
            f"the {me.name}" if me.color else None,
        ]
        return list(dict.fromkeys(c for c in candidates if c))[: self.max_captions]


class CallableCaptioner(Captioner):
    """Adapter for an external image-to-text model: ``fn(crop, box) -> list[str]`` is called on each
    object's crop (its box grown by `context` of its size on each side, clipped to the image);
    empty and repeated texts are removed, at most `max_captions` kept."""

    def __init__(self, fn: Callable[[np.ndarray, np.ndarray], List[str]], max_captions: int = 5,
                 context: float = 0.0):
        self.fn = fn
        self.max_captions = max_captions
        self.context = context

    def caption(self, image: np.ndarray, annotations: Sequence[dict]) -> List[List[str]]:
        height, width = image.shape[:2]
        out = []
        for ann in annotations:
            box = np.array(BoxMode.convert(list(ann["bbox"]), ann["bbox_mode"], BoxMode.XYXY_ABS), float)
            grow = self.context * np.array([box[0] - box[2], box[1] - box[3], box[2] - box[0], box[3] - box[1]])
            x0, y0, x1, y1 = np.clip(np.round(box + grow), 0, [width, height, width, height]).astype(int)
            crop = image[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
            texts = [str(t).strip() for t in self.fn(crop, box)]
            out.append(list(dict.fromkeys(t for t in texts if t))[: self.max_captions])
        return out


def load_captioner(spec: str, max_captions: int = 5) -> Captioner:
    """``"builtin"`` or ``"module:attr"`` (a Captioner subclass or instance, or a callable ``fn``)."""
    if spec == "builtin":
        return BuiltinCaptioner(max_captions)
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"--captioner {spec!r}: expected 'builtin' or 'module:attr'")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"--captioner {spec!r}: cannot load {attr!r} from module {module_name!r}: {error}") from error
    if isinstance(target, type) and issubclass(target, Captioner):
        return target()
    if isinstance(target, Captioner):
        return target
    if callable(target):
        return CallableCaptioner(target, max_captions)
    raise TypeError(f"--captioner {spec!r}: {attr!r} is neither a Captioner nor a callable")
