"""Referring sentences generated from a scene's ground truth, each naming exactly one object.

Templates (a sentence is produced only when it is unambiguous in its image):

* attributes: "the red circle" (only red circle), "the circle" (only circle), "the red object"
  (only red object);
* superlatives among objects of one shape: "the largest / smallest triangle" (visible area at least
  ``SIZE_RATIO`` times larger / smaller than every other triangle);
* extremes among objects of one shape: "the star on the far left / on the far right / at the top /
  at the bottom" (visible centroid at least ``POSITION_MARGIN`` px beyond every other star);
* relations to a uniquely named anchor: "the square left of / right of / above / below the blue
  star": the referred square is the only square on that side of the anchor, and no other square is
  within ``POSITION_MARGIN`` px of the anchor along that axis.

Every horizontal sentence contains the word "left" or "right", so a horizontal flip can swap them.
"""
from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np

from .scene import ShapeObject

SIZE_RATIO = 1.3
POSITION_MARGIN = 6.0

# relation phrase -> (axis of the centroid: 0 = x, 1 = y; sign: +1 when the referred object's
# coordinate is larger than the anchor's)
_RELATIONS = {"left of": (0, -1), "right of": (0, +1), "above": (1, -1), "below": (1, +1)}
_EXTREMES = {"on the far left": (0, -1), "on the far right": (0, +1),
             "at the top": (1, -1), "at the bottom": (1, +1)}


@dataclass(frozen=True)
class _Facts:
    """What a sentence may mention about one object."""

    shape: str
    color: str
    area: int
    position: tuple  # visible centroid (x, y)


def _facts(obj: ShapeObject) -> _Facts:
    return _Facts(obj.shape, obj.color, obj.area, obj.centroid)


def _attribute_sentences(me: _Facts, facts: Sequence[_Facts]) -> List[str]:
    sentences = []
    if sum(f.shape == me.shape and f.color == me.color for f in facts) == 1:
        sentences.append(f"the {me.color} {me.shape}")
    if sum(f.shape == me.shape for f in facts) == 1:
        sentences.append(f"the {me.shape}")
    if sum(f.color == me.color for f in facts) == 1:
        sentences.append(f"the {me.color} object")
    return sentences


def _superlative_sentences(me: _Facts, rivals: Sequence[_Facts]) -> List[str]:
    """``rivals``: the other objects of ``me``'s shape (non-empty)."""
    sentences = []
    if me.area >= SIZE_RATIO * max(f.area for f in rivals):
        sentences.append(f"the largest {me.shape}")
    if me.area * SIZE_RATIO <= min(f.area for f in rivals):
        sentences.append(f"the smallest {me.shape}")
    return sentences


def _extreme_sentences(me: _Facts, rivals: Sequence[_Facts]) -> List[str]:
    """``rivals``: the other objects of ``me``'s shape (non-empty)."""
    sentences = []
    for phrase, (axis, sign) in _EXTREMES.items():
        margins = [sign * (me.position[axis] - f.position[axis]) for f in rivals]
        if min(margins) >= POSITION_MARGIN:
            sentences.append(f"the {me.shape} {phrase}")
    return sentences


def _relation_sentences(me: _Facts, facts: Sequence[_Facts]) -> List[str]:
    sentences = []
    for anchor in facts:
        if anchor is me or sum(f.shape == anchor.shape and f.color == anchor.color
                               for f in facts) != 1:
            continue
        candidates = [f for f in facts if f.shape == me.shape and f is not anchor]
        for phrase, (axis, sign) in _RELATIONS.items():
            offsets = {id(f): sign * (f.position[axis] - anchor.position[axis]) for f in candidates}
            on_side = [f for f in candidates if offsets[id(f)] >= POSITION_MARGIN]
            unclear = [f for f in candidates if abs(offsets[id(f)]) < POSITION_MARGIN]
            if on_side == [me] and not unclear:
                sentences.append(f"the {me.shape} {phrase} the {anchor.color} {anchor.shape}")
    return sentences


def candidate_sentences(index: int, facts: Sequence[_Facts]) -> Dict[str, List[str]]:
    """All unambiguous sentences for object ``index`` of an image, grouped by template kind."""
    me = facts[index]
    rivals = [f for f in facts if f.shape == me.shape and f is not me]
    kinds = {"attribute": _attribute_sentences(me, facts),
             "relation": _relation_sentences(me, facts)}
    if rivals:
        kinds["superlative"] = _superlative_sentences(me, rivals)
        kinds["extreme"] = _extreme_sentences(me, rivals)
    return {kind: sentences for kind, sentences in kinds.items() if sentences}


def pick_sentences(kinds: Dict[str, List[str]], rng: np.random.Generator, limit: int) -> List[str]:
    """Up to ``limit`` sentences, drawn round-robin over the template kinds (in random order) so
    that one object's sentences are varied."""
    pools = [list(rng.permutation(kinds[kind])) for kind in sorted(kinds)]
    pools = [pools[i] for i in rng.permutation(len(pools))]
    chosen = []
    while len(chosen) < limit and any(pools):
        for pool in pools:
            if pool and len(chosen) < limit:
                chosen.append(str(pool.pop()))
    return chosen


def referring_sentences(objects: Sequence[ShapeObject], rng: np.random.Generator,
                        limit: int = 3) -> List[List[str]]:
    """For each object, up to ``limit`` unambiguous sentences (empty when none is possible)."""
    facts = [_facts(obj) for obj in objects]
    return [pick_sentences(candidate_sentences(i, facts), rng, limit) for i in range(len(facts))]
