"""Which exemplars prompt what: the objects of a dataset as exemplar candidates, fixed evaluation
sets drawn by a seed and kept in a JSON file, and the random draws of the exemplar stage (K
exemplars of a class from images other than the ones being trained on)."""
import json
import os
import random
from typing import Dict, List, NamedTuple, Optional, Sequence

import torch
from detectron2.structures import BoxMode

EXEMPLAR_SETS_VERSION = 1


class ObjectRecord(NamedTuple):
    """One annotated object as an exemplar candidate: its image (file and id), class name,
    annotation id and xyxy box in the image's pixels."""

    file_name: str
    image_id: int
    class_name: str
    annotation_id: int
    box: List[float]


def dataset_objects(dataset_dicts: Sequence[dict], class_names: Sequence[str]) -> List[ObjectRecord]:
    """Every boxed object of detectron2 dataset dicts (contiguous `category_id` indexing
    `class_names`), in dataset order."""
    objects = []
    for record in dataset_dicts:
        for annotation in record.get("annotations", []):
            if not annotation.get("has_box", True) or annotation.get("iscrowd", 0):
                continue
            box = BoxMode.convert(list(annotation["bbox"]), annotation["bbox_mode"], BoxMode.XYXY_ABS)
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            objects.append(ObjectRecord(record["file_name"], int(record["image_id"]),
                                        class_names[annotation["category_id"]], int(annotation.get("id", -1)),
                                        [float(v) for v in box]))
    return objects


def draw_exemplar_sets(objects: Sequence[ObjectRecord], classes: Sequence[str], max_k: int, episodes: int,
                       seed: int) -> Dict[str, List[List[ObjectRecord]]]:
    """Per class, `episodes` lists of `max_k` distinct exemplars (a prompt with K exemplars uses
    the first K of a list), drawn with `seed` from as many different images as the class has (one
    object per image while images last)."""
    rng = random.Random(seed)
    sets = {}
    for name in classes:
        by_image: Dict[int, List[ObjectRecord]] = {}
        for record in objects:
            if record.class_name == name:
                by_image.setdefault(record.image_id, []).append(record)
        if sum(map(len, by_image.values())) < max_k:
            raise ValueError(f"class {name!r} has {sum(map(len, by_image.values()))} objects, fewer than K = {max_k}")
        sets[name] = [_one_per_image_first(by_image, max_k, rng) for _ in range(episodes)]
    return sets


def _one_per_image_first(by_image: Dict[int, List[ObjectRecord]], k: int, rng: random.Random) -> List[ObjectRecord]:
    """k distinct objects: shuffled images visited round-robin, a random unused object of each."""
    pools = {i: rng.sample(objects, len(objects)) for i, objects in by_image.items()}
    order = rng.sample(sorted(pools), len(pools))
    drawn = []
    while len(drawn) < k:
        for image_id in order:
            if pools[image_id] and len(drawn) < k:
                drawn.append(pools[image_id].pop())
    return drawn


def write_exemplar_sets(path: str, evaluations: Dict[str, Dict], seed: int) -> None:
    """Write a new JSON file of exemplar sets (an existing file is refused: runs reuse it).

    Args:
        evaluations: {evaluated dataset: {"source": dataset the exemplars come from,
            "sets": {class: [[ObjectRecord] * max_k] * episodes}}}.
        seed: the seed they were drawn with (recorded).
    """
    if os.path.exists(path):
        raise FileExistsError(f"{path} exists; exemplar sets are written once and reused")
    payload = {"version": EXEMPLAR_SETS_VERSION, "seed": seed, "evaluations": {
        dataset: {"source": entry["source"],
                  "sets": {name: [[r._asdict() for r in episode] for episode in episodes]
                           for name, episodes in entry["sets"].items()}}
        for dataset, entry in evaluations.items()}}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "x") as f:
        json.dump(payload, f, indent=1)


def read_exemplar_sets(path: str) -> Dict[str, Dict]:
    """The evaluations of a file written by `write_exemplar_sets` ({dataset: {"source", "sets"}}
    with `ObjectRecord`s); a file that is not such a JSON is a ValueError naming it."""
    try:
        with open(path) as f:
            payload = json.load(f)
        if payload["version"] != EXEMPLAR_SETS_VERSION:
            raise KeyError(f"version {payload['version']} (expected {EXEMPLAR_SETS_VERSION})")
        return {dataset: {"source": entry["source"],
                          "sets": {name: [[ObjectRecord(**r) for r in episode] for episode in episodes]
                                   for name, episodes in entry["sets"].items()}}
                for dataset, entry in payload["evaluations"].items()}
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"exemplar sets file {path}: not a valid exemplar sets JSON "
                         f"({type(e).__name__}: {e})") from e


class ClassSampler:
    """Random draws of cached exemplars for the exemplar stage.

    Args:
        class_ids: (N,) int64 class of each cached exemplar.
        image_ids: (N,) int64 image of each cached exemplar.
        generator: torch RNG of the draws.
    """

    def __init__(self, class_ids, image_ids, generator: torch.Generator):
        self.image_ids = image_ids
        self.generator = generator
        self.by_class = {int(c): torch.nonzero(class_ids == c).flatten() for c in torch.unique(class_ids)}

    def draw(self, class_id: int, k: int, exclude_images: Sequence[int]) -> Optional[torch.Tensor]:
        """Indices of k exemplars of `class_id` (distinct, none from `exclude_images`); None when the
        class has fewer than k such exemplars."""
        candidates = self.by_class.get(int(class_id))
        if candidates is None:
            return None
        if len(exclude_images):
            keep = ~torch.isin(self.image_ids[candidates], torch.as_tensor(list(exclude_images)))
            candidates = candidates[keep]
        if len(candidates) < k:
            return None
        return candidates[torch.randperm(len(candidates), generator=self.generator)[:k]]
