"""Synthetic data engine (paper 3.4): files written by `tools/synthesize_masks.py` and
`tools/synthesize_captions.py`, and their registration as training datasets.

Both tools write a COCO-format json made from a registered dataset's unified dicts:

* ``images``: ``id`` (the source ``image_id``), ``file_name`` (relative to the image root),
  ``height``, ``width``;
* ``categories``: the source metadata's classes (``thing_classes``, else ``text_prompts``), with the
  source's dataset ids (``thing_dataset_id_to_contiguous_id``) when it has them, else ids
  ``0 .. n-1``;
* ``annotations``: ``id``, ``image_id``, ``category_id``, ``bbox`` (XYWH), ``area``, ``iscrowd``,
  optional ``segmentation`` (COCO RLE), ``texts``; the mask tool adds per mask ``score`` and
  ``quality``, the caption tool adds ``texts``;
* ``info``: provenance (``mqformer_synthetic``: the tool, the source dataset, its settings).

`register_synthetic_masks` / `register_synthetic_captions` register such a file as a dataset in the
unified format (docs/data_format.md), the masks as ``task`` "instance" (a detection dataset
becomes a segmentation one), the captions with the source's task; the loader keeps ``texts`` (the
mapper draws one per load), ``score`` and ``quality``.
"""
import json
import logging
import os
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from .datasets.coco_format import coco_records
from .datasets.common import load_json, register_dataset
from .targets import decode_segmentation

logger = logging.getLogger(__name__)

MASKS_SUFFIX = "-syn-m"
CAPTIONS_SUFFIX = "-syn-c"
# Per-annotation keys of the synthetic files that the unified loader keeps.
EXTRA_ANNOTATION_KEYS = ("texts", "score", "quality", "has_box")
# Metadata of the source that describes its files, not the synthetic ones: never copied.
_SOURCE_FILE_KEYS = ("name", "json_file", "image_root", "category_json", "panoptic_root", "panoptic_json",
                     "sem_seg_root", "refs_file")


def masks_dataset_name(source: str) -> str:
    return source + MASKS_SUFFIX


def captions_dataset_name(source: str) -> str:
    return source + CAPTIONS_SUFFIX


def check_output_path(path: str, overwrite: bool) -> None:
    """Refuse to replace an existing file unless `overwrite`; the folder must exist or be creatable."""
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"--output {path} already exists; pass --overwrite to replace it "
                              "or choose another file")
    if os.path.isdir(path):
        raise IsADirectoryError(f"--output {path} is a folder, expected a json file path")


def write_json_atomic(path: str, data) -> None:
    """Write `data` as json to `path` through a temporary file + rename (never half-written)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def category_table(metadata, dataset_name: str) -> Tuple[List[dict], Dict[int, int]]:
    """COCO ``categories`` of a dataset's metadata and the contiguous index -> json id map.

    Contiguous index i (a unified ``category_id``, an index into ``text_prompts``) keeps the source's
    dataset id when ``thing_dataset_id_to_contiguous_id`` maps some id onto every index, else gets
    id i."""
    prompts = list(metadata.get("text_prompts", None) or [])
    names = list(metadata.get("thing_classes", None) or prompts)
    if not names:
        raise ValueError(f"dataset '{dataset_name}': its metadata has neither thing_classes nor text_prompts")
    if prompts and len(prompts) != len(names):
        names = prompts
    id_map = metadata.get("thing_dataset_id_to_contiguous_id", None) or {}
    to_dataset_id = {int(index): int(dataset_id) for dataset_id, index in id_map.items()}
    if sorted(to_dataset_id) != list(range(len(names))):
        to_dataset_id = {index: index for index in range(len(names))}
    categories = [{"id": to_dataset_id[i], "name": name} for i, name in enumerate(names)]
    return categories, to_dataset_id


def image_root_of(records: Sequence[dict], metadata) -> str:
    """The folder image paths are written relative to: the metadata's ``image_root`` when it holds
    every image, else the images' common folder."""
    root = metadata.get("image_root", None)
    files = [os.path.abspath(r["file_name"]) for r in records]
    if root and all(f.startswith(os.path.abspath(root) + os.sep) for f in files):
        return os.path.abspath(root)
    return os.path.commonpath([os.path.dirname(f) for f in files]) if files else os.getcwd()


def coco_image(record: dict, image_root: str) -> dict:
    """The COCO ``images`` entry of a unified record."""
    return {"id": record["image_id"], "file_name": os.path.relpath(os.path.abspath(record["file_name"]), image_root),
            "height": int(record["height"]), "width": int(record["width"])}


def xywh_box(annotation: dict) -> List[float]:
    """An annotation's box as XYWH absolute floats."""
    box = BoxMode.convert(list(annotation["bbox"]), annotation.get("bbox_mode", BoxMode.XYWH_ABS), BoxMode.XYWH_ABS)
    return [float(v) for v in box]


def json_segmentation(segmentation):
    """A polygon list or RLE dict in json-serialisable form (RLE ``counts`` bytes -> str)."""
    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), bytes):
        return dict(segmentation, counts=segmentation["counts"].decode("ascii"))
    return segmentation


def coco_base_annotation(annotation: dict, image_id, to_dataset_id: Dict[int, int]) -> dict:
    """A unified annotation as a COCO annotation (no ``id`` yet): box, class, crowd flag, its mask
    if it has one, ``has_box`` when False, ``texts``, ``area`` (of the box; the tools set the
    mask's)."""
    out = {"image_id": image_id, "bbox": xywh_box(annotation), "iscrowd": int(annotation.get("iscrowd", 0))}
    if "segmentation" in annotation:
        out["segmentation"] = json_segmentation(annotation["segmentation"])
    if annotation.get("category_id") is not None:
        out["category_id"] = to_dataset_id[int(annotation["category_id"])]
    elif annotation.get("unknown_category_id") is not None:  # kept as the source json has it
        out["category_id"] = annotation["unknown_category_id"]
    if not annotation.get("has_box", True):
        out["has_box"] = False
    if annotation.get("texts"):
        out["texts"] = list(annotation["texts"])
    out["area"] = float(out["bbox"][2] * out["bbox"][3])
    return out


def number_annotations(annotations: List[dict]) -> List[dict]:
    """Give annotations the ids 1..n in order (``id`` first in each dict)."""
    return [dict({"id": index}, **ann) for index, ann in enumerate(annotations, start=1)]


def load_synthetic_json(json_file: str, image_root: str, id_map: Optional[Dict[int, int]] = None) -> List[dict]:
    """Unified records of a synthetic COCO json, keeping ``texts``, ``score``, ``quality`` and
    ``has_box`` of each annotation (`coco_records` keeps the geometry and category)."""
    info = load_json(json_file)
    records = coco_records(info, image_root, id_map=id_map)
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
        f"    from mqformer_d2.data.synthetic import {function}\n"
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


def synthetic_mask_iou(json_file: str, image_root: str, reference: str) -> Dict[str, float]:
    """Mean IoU of a synthetic mask file against the real masks of `reference` (the same images
    and annotations in the same order, e.g. the dataset whose masks were hidden).

    Returns ``miou`` over the annotations that kept a mask, ``miou_all`` counting dropped masks as
    0, and the counts ``kept`` / ``total``."""
    real = {r["image_id"]: r for r in DatasetCatalog.get(reference)}
    ious, total = [], 0
    for record in load_synthetic_json(json_file, image_root):
        if record["image_id"] not in real:
            raise KeyError(f"{json_file}: image {record['image_id']} is not in '{reference}'")
        truth = real[record["image_id"]]
        size = (record["height"], record["width"])
        for ann, true_ann in zip(record["annotations"], truth["annotations"]):
            if "segmentation" not in true_ann or ann.get("iscrowd", 0):
                continue
            total += 1
            if "segmentation" in ann and "quality" in ann:
                a = decode_segmentation(ann["segmentation"], *size).astype(bool)
                b = decode_segmentation(true_ann["segmentation"], *size).astype(bool)
                ious.append(float((a & b).sum() / max((a | b).sum(), 1)))
    return {"miou": float(np.mean(ious)) if ious else 0.0, "miou_all": float(np.sum(ious) / max(total, 1)),
            "kept": len(ious), "total": total}
