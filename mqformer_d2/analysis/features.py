"""Per-thing-target features of every stage of an MQ-Former, for linear probes.

Each labelled image is loaded as a training target at its original size (no augmentation, every
class name in its vocabulary), the model's final decoder layer is matched to the targets with the
training matcher (`matching.final_layer_matching`), and for each matched thing target (a target
with a box) these read-outs are kept (K targets; D depends on the source):

* ``gt_mask``: the ground-truth mask cropped to its box, resized to mask_size^2 (model-free bound);
* ``backbone.<level>``: RoIAlign grid (grid x grid, aligned) of the level under the target's box;
  ``backbone.<level>.mask_avg``: the level averaged under the true mask (the previous read-out);
* ``encoder.s<stride>``: RoIAlign grid of each pixel-decoder memory level; ``mask_features``: of
  the stride-4 mask features;
* ``selected_query``: the content of the conditional query (selected encoder token) that the
  training matcher assigns to the target among the two-stage proposals;
* ``decoder.layer<i>``: layer i's output query at the final-layer matched query index;
* ``class_head.query``: that query as the class head compares it with the texts (unit vector).

Besides, what the class head names (argmax over the image's texts and over the thing names only)
and each target's outcome per `shares.SHARES`.
"""
import logging
import math
import random
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor

from mqformer_d2.data import UnifiedDatasetMapper

from .capture import Activations, captured_activations
from .matching import final_layer_matching
from .readouts import gt_mask_crop, mask_average, roi_grid
from .shares import SHARES, mask_ious, target_outcomes

logger = logging.getLogger(__name__)

# Vocabulary of every loaded image: all class names of the dataset (more than any dataset has).
_ALL_NEGATIVE_TEXTS = 1000


@dataclass
class TargetFeatures:
    """Read-outs of K matched thing targets of one model over one dataset.

    names: K class names. sources: {source: (K, D) float32}; rows are NaN where a source has no
    read-out for the target (e.g. no proposal matched to it). predicted: {"all_texts" | "thing_names":
    K names the class head gives the matched query}. outcomes: {share: K bools}.
    """

    names: List[str] = field(default_factory=list)
    sources: Dict[str, Tensor] = field(default_factory=dict)
    predicted: Dict[str, List[str]] = field(default_factory=dict)
    outcomes: Dict[str, List[bool]] = field(default_factory=dict)


class _Accumulator:
    """Collects per-image blocks of rows; `finish` concatenates them into TargetFeatures."""

    def __init__(self):
        self.features = TargetFeatures()
        self.blocks: Dict[str, List[Tensor]] = {}

    def add(self, source: str, rows: Tensor) -> None:
        self.blocks.setdefault(source, []).append(rows.detach().float().cpu())

    def finish(self) -> TargetFeatures:
        count = len(self.features.names)
        for source, blocks in self.blocks.items():
            rows = torch.cat(blocks)
            if len(rows) != count:
                raise RuntimeError(f"source {source!r} has {len(rows)} rows for {count} targets")
            self.features.sources[source] = rows
        return self.features


def encoder_level_maps(pixel, image: int, padded_height: int) -> Dict[str, tuple]:
    """One image's pixel-decoder memory as maps: {"encoder.s<stride>": ((C, H_l, W_l), 1 / stride)}."""
    maps = {}
    for (height, width), start in zip(pixel.spatial_shapes.tolist(), pixel.level_start_index.tolist()):
        level = pixel.memory[image, start: start + height * width].transpose(0, 1).reshape(-1, height, width)
        maps[f"encoder.s{round(padded_height / height)}"] = (level, height / padded_height)
    return maps


def match_proposals(model, activations: Activations, targets: List[Dict]) -> Optional[List[Dict[int, int]]]:
    """The training matcher on the selected two-stage proposals (as the criterion's "_interm" set):
    per image {target index: conditional query index}; None without conditional queries. Runs under
    a forked RNG, so the final layer's matching of later batches draws the same points as without."""
    if activations.selected is None:
        return None
    with torch.random.fork_rng(devices=[]):
        indices = model.criterion.match(activations.selected.proposals, targets)
    return [dict(zip(k.tolist(), q.tolist())) for q, k in indices]


def _add_image_readouts(model, acc: _Accumulator, activations: Activations, image: int, boxes: Tensor,
                        masks: Tensor, grid: int, mask_size: int) -> None:
    """Adds one image's map read-outs of its K things: boxes (K, 4) XYXY pixels, masks (K, Hpad, Wpad)."""
    acc.add("gt_mask", gt_mask_crop(masks, boxes, mask_size))
    shapes = model.backbone.output_shape()
    for level, maps in activations.backbone.items():
        acc.add(f"backbone.{level}", roi_grid(maps[image], boxes, 1.0 / shapes[level].stride, grid))
        acc.add(f"backbone.{level}.mask_avg", mask_average(maps[image], masks))
    pixel = activations.pixel
    for source, (level_map, scale) in encoder_level_maps(pixel, image, masks.shape[-2]).items():
        acc.add(source, roi_grid(level_map, boxes, scale, grid))
    mask_map = pixel.mask_features[image]
    acc.add("mask_features", roi_grid(mask_map, boxes, mask_map.shape[-2] / masks.shape[-2], grid))


def _add_query_readouts(model, acc: _Accumulator, activations: Activations, image: int, queries: Tensor,
                        targets: Tensor, proposals: Optional[Dict[int, int]]) -> None:
    """Adds the query read-outs of K matched things: queries / targets (K,) matched index pairs."""
    if proposals is not None:
        content = activations.selected.content[image]
        rows = torch.full((len(targets), content.shape[-1]), math.nan)
        for row, k in enumerate(targets.tolist()):
            if k in proposals:
                rows[row] = content[proposals[k]]
        acc.add("selected_query", rows)
    for number, layer_queries in enumerate(activations.layers, start=1):
        acc.add(f"decoder.layer{number}", layer_queries[image, queries.to(layer_queries.device)])
    final = activations.layers[-1]
    acc.add("class_head.query", model.decoder.heads.class_embedding(final[image, queries.to(final.device)]))


def collect_batch(model, batch: List[Dict], acc: _Accumulator, thing_names: Sequence[str], grid: int,
                  mask_size: int) -> None:
    """Runs the model on one batch of mapped training inputs and adds its matched things to `acc`."""
    with captured_activations(model) as activations:
        outputs, targets, indices = final_layer_matching(model, batch)
    proposals = match_proposals(model, activations, targets)
    for image, (output, target, (queries, target_ids)) in enumerate(zip(outputs, targets, indices)):
        is_thing = target["has_box"].cpu()[target_ids]
        queries, target_ids = queries[is_thing], target_ids[is_thing]
        if len(target_ids) == 0:
            continue
        texts = output["texts"]
        on_device = target_ids.to(model.device)
        names = [texts[int(label)] for label in target["labels"][on_device]]
        boxes = batch[image]["instances"].gt_boxes.tensor[target_ids].to(model.device)
        _add_image_readouts(model, acc, activations, image, boxes, target["masks"][on_device], grid, mask_size)
        _add_query_readouts(model, acc, activations, image, queries, target_ids,
                            None if proposals is None else proposals[image])
        _add_predictions(acc, output, queries, target_ids, target, names, thing_names)


def _add_predictions(acc: _Accumulator, output: Dict, queries: Tensor, target_ids: Tensor, target: Dict,
                     names: List[str], thing_names: Sequence[str]) -> None:
    """Adds what the class head names for the matched queries and each target's share outcomes."""
    texts = output["texts"]
    logits = output["pred_logits"]
    logits = logits[queries.to(logits.device)]  # (K, T), -inf outside the image's vocabulary
    predicted_all = [texts[int(i)] for i in logits.argmax(-1)]
    thing_columns = torch.tensor([texts.index(n) for n in thing_names if n in texts], dtype=torch.int64)
    predicted_things = [""] * len(names)
    if len(thing_columns):
        best = thing_columns[logits[:, thing_columns.to(logits.device)].argmax(-1).cpu()]
        predicted_things = [texts[int(i)] for i in best]
    ious = mask_ious(output["pred_masks"], target["masks"])
    features = acc.features
    features.names.extend(names)
    features.predicted.setdefault("all_texts", []).extend(predicted_all)
    features.predicted.setdefault("thing_names", []).extend(predicted_things)
    for query, k, name, predicted in zip(queries.tolist(), target_ids.tolist(), names, predicted_all):
        for share, ok in target_outcomes(ious, query, k, predicted == name).items():
            features.outcomes.setdefault(share, []).append(ok)


def collect_target_features(model, records: List[Dict], thing_names: Sequence[str], batch_size: int,
                            image_format: str, grid: int = 4, mask_size: int = 16) -> TargetFeatures:
    """Every read-out of the matched thing targets of `records` (unified dicts with "dataset_name")
    for `model` (in eval mode). Deterministic: the matcher's random points are seeded."""
    mapper = UnifiedDatasetMapper(True, augmentations=[], image_format=image_format,
                                  num_negative_texts=_ALL_NEGATIVE_TEXTS, rng=random.Random(0))
    acc = _Accumulator()
    torch.manual_seed(0)  # the matcher's mask cost samples random points: same seed, same matching
    with torch.no_grad():
        for number, start in enumerate(range(0, len(records), batch_size), start=1):
            batch = [mapper(r) for r in records[start: start + batch_size]]
            collect_batch(model, batch, acc, thing_names, grid, mask_size)
            done = start + len(batch)
            if number % 10 == 0 or done == len(records):
                logger.info("read out %d / %d images (%d thing targets)", done, len(records), len(acc.features.names))
    for share in SHARES:
        acc.features.outcomes.setdefault(share, [])
    return acc.finish()
