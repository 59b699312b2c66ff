"""Synthetic files as training datasets: `register_synthetic_masks` / `register_synthetic_captions`
register a tool's json in the unified format (docs/data_format.md), the masks as ``task``
"instance" (a detection dataset becomes a segmentation one), the captions with the source's task;
the loader keeps ``texts`` (the mapper draws one per load), ``score`` and ``quality``.
`register_subset` registers part of a dataset, optionally without its masks (to hide and
re-synthesize them)."""
import logging
import os
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog

from ..data.datasets.coco_format import coco_records
from ..data.datasets.common import load_json, register_dataset
from .outputs import category_table

logger = logging.getLogger(__name__)

MASKS_SUFFIX = "-syn-m"
CAPTIONS_SUFFIX = "-syn-c"
# Per-annotation keys of the synthetic files that the unified loader keeps.
EXTRA_ANNOTATION_KEYS = ("texts", "score", "quality", "has_box")
# Metadata of the source that describes its files, not the synthetic ones: never copied.
_SOURCE_FILE_KEYS = ("name", "json_file", "image_root", "category_json", "panoptic_root", "panoptic_json",
                     "sem_seg_root", "refs_file")


def masks_dataset_name(source: str) -> str:
    """The conventional name of `source`'s synthetic masks: ``<source>-syn-m``."""
    return source + MASKS_SUFFIX


def captions_dataset_name(source: str) -> str:
    """The conventional name of `source`'s synthetic captions: ``<source>-syn-c``."""
    return source + CAPTIONS_SUFFIX


def synthetic_image_root(json_file: str) -> str:
    """The image folder a synthetic file's paths are relative to (recorded by the tools)."""
    return load_json(json_file)["info"]["mqformer_synthetic"]["image_root"]


def load_synthetic_json(json_file: str, image_root: str, id_map: Optional[Dict[int, int]] = None) -> List[dict]:
    """Unified records of a synthetic COCO json, keeping ``texts``, ``score``, ``quality`` and
    ``has_box`` of each annotation (`coco_records` keeps the geometry and category)."""
    info = load_json(json_file)
    records = coco_records(info, image_root, id_map=id_map, source=json_file)
    extras = defaultdict(list)
    for ann in info["annotations"]:
        extras[ann["image_id"]].append({k: ann[k] for k in EXTRA_ANNOTATION_KEYS if k in ann})
    for record in records:
        for unified, extra in zip(record["annotations"], extras[record["image_id"]]):
            unified.update(extra)
    return records


def _register_synthetic(name: str, json_file: str, image_root: str, metadata_from: str,
                        task: Optional[str], evaluator_type: Optional[str]) -> None:
    """Register `json_file` under `name`, with the classes and task of `metadata_from`."""
    if metadata_from not in MetadataCatalog.list():
        raise KeyError(f"register '{name}': metadata_from '{metadata_from}' is not a registered dataset")
    source = MetadataCatalog.get(metadata_from)
    categories, to_dataset_id = category_table(source, metadata_from)
    meta = {k: v for k, v in source.as_dict().items() if k not in _SOURCE_FILE_KEYS}
    prompts = list(source.get("text_prompts", None) or [c["name"] for c in categories])
    meta.update(
        task=task or source.get("task", "instance"),
        evaluator_type=evaluator_type or source.get("evaluator_type", "coco"),
        text_prompts=prompts,
        thing_classes=list(source.get("thing_classes", None) or prompts),
        thing_dataset_id_to_contiguous_id={d: i for i, d in to_dataset_id.items()},
        json_file=json_file, image_root=image_root, synthetic_source=metadata_from,
    )
    id_map = dict(meta["thing_dataset_id_to_contiguous_id"])
    register_dataset(name, lambda: load_synthetic_json(json_file, image_root, id_map), **meta)
    logger.info("registered '%s' from %s (classes of '%s')", name, json_file, metadata_from)


def register_synthetic_masks(name: str, json_file: str, image_root: str, metadata_from: str) -> None:
    """Register the output of `tools/synthesize_masks.py` as a segmentation dataset: ``task``
    "instance", COCO evaluation against `json_file`, classes from the `metadata_from` dataset.
    Conventionally `name` is ``<metadata_from>-syn-m``. Annotations whose mask was dropped (below
    the tool's --min-quality) are box-only targets."""
    _register_synthetic(name, json_file, image_root, metadata_from, task="instance", evaluator_type="coco")


def register_synthetic_captions(name: str, json_file: str, image_root: str, metadata_from: str,
                                task: Optional[str] = None) -> None:
    """Register the output of `tools/synthesize_captions.py`: each annotation carries ``texts``
    (one is drawn per load), task and classes of `metadata_from` unless `task` is given.
    Conventionally `name` is ``<metadata_from>-syn-c``."""
    _register_synthetic(name, json_file, image_root, metadata_from, task=task, evaluator_type=None)


def registration_hint(function: str, name: str, json_file: str, image_root: str, source: str) -> str:
    """The lines a user adds before training to use a synthetic file (logged by the tools)."""
    return (
        f"register it before building the trainer (e.g. in a copy of train_net.py):\n"
        f"    from mqformer_d2.synthetic import {function}\n"
        f"    {function}({name!r}, {os.path.abspath(json_file)!r}, {image_root!r}, metadata_from={source!r})\n"
        f"then train with DATASETS.TRAIN \"('{name}',)\" (or next to other datasets, with "
        f"DATASETS.TRAIN_SAMPLING_RATIOS)"
    )


def register_subset(name: str, source: str, image_ids: Sequence, drop_masks: bool = False) -> None:
    """Register the images `image_ids` of `source` as `name` (same metadata), with every mask
    removed (boxes kept: a detection-only view) when `drop_masks`. For experiments that hide the
    masks of part of a split and synthesize them."""
    wanted = set(image_ids)

    def load() -> List[dict]:
        records = [r for r in DatasetCatalog.get(source) if r["image_id"] in wanted]
        if drop_masks:
            records = [dict(r, annotations=[{k: v for k, v in ann.items() if k != "segmentation"}
                                            for ann in r.get("annotations", [])]) for r in records]
        return records

    meta = {k: v for k, v in MetadataCatalog.get(source).as_dict().items() if k != "name"}
    if drop_masks:
        meta["task"] = "detection"
    register_dataset(name, load, **meta)
