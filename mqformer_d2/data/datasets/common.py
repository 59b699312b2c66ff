"""Helpers shared by every dataset family: roots, missing-data errors, class-name cleaning,
mask -> unified annotation conversion (through `data.masks`) and registration with metadata.

Every loader in this package returns Detectron2 dataset dicts in the unified (text, box, mask)
format of docs/data_format.md. Registration never touches the disk; a missing file or folder is
reported when the dataset is loaded (``DatasetCatalog.get``), by a :class:`DatasetNotFoundError`
whose message names the path.
"""
import json
import logging
import os
import re
from typing import Callable, Iterable, List, Optional, Sequence

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.catalog import Metadata
from detectron2.structures import BoxMode
from tqdm import tqdm
from tqdm.contrib.concurrent import thread_map

from ..masks import encode_mask, rle_xywh_box

logger = logging.getLogger(__name__)

TASKS = ("instance", "semantic", "panoptic", "referring", "foreground", "detection", "matting")

# Class names written as one word in their dataset, split for the text encoder.
_JOINED_WORDS = {
    "diningtable": "dining table",
    "pottedplant": "potted plant",
    "tvmonitor": "tv monitor",
    "playingfield": "playing field",
}
# Suffix words that COCO-panoptic uses to tag merged/other stuff classes ("wall-other-merged").
_TAG_WORDS = {"merged", "other", "stuff"}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset file or folder is missing; the message names the path and the docs to read."""


def datasets_root() -> str:
    """The datasets root: ``$DETECTRON2_DATASETS``, default ``datasets`` (as detectron2 does)."""
    return os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))


def _missing(kind: str, path: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"Dataset {kind} not found: {path}\n(set $DETECTRON2_DATASETS to the folder holding the "
        "datasets and see datasets/README.md for the expected layout)"
    )


def require_file(path: str) -> str:
    """Return ``path`` if it is a file, else raise :class:`DatasetNotFoundError` naming it."""
    if not os.path.isfile(path):
        raise _missing("file", path)
    return path


def require_dir(path: str) -> str:
    """Return ``path`` if it is a folder, else raise :class:`DatasetNotFoundError` naming it."""
    if not os.path.isdir(path):
        raise _missing("folder", path)
    return path


def load_json(path: str):
    """Read a json file, raising :class:`DatasetNotFoundError` when it is absent and a ValueError
    naming the file when it is not valid json (e.g. truncated)."""
    with open(require_file(path)) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid json (truncated or corrupt?): {e}") from e


def clean_class_name(name: str) -> str:
    """A dataset class name as a text prompt: lower case, first synonym only, no underscores or
    odd punctuation, joined words split ("traffic_light" -> "traffic light",
    "wall-other-merged" -> "wall", "road, route" -> "road", "bow_(weapon)" -> "bow weapon")."""
    text = name.strip().lower().split(",")[0]
    text = re.sub(r"[_\-/]+", " ", text)
    text = re.sub(r"[^a-z0-9&' ]+", " ", text)
    words = text.split()
    kept = [w for w in words if w not in _TAG_WORDS] or words
    text = " ".join(_JOINED_WORDS.get(w, w) for w in kept)
    return text


def clean_class_names(names: Iterable[str]) -> List[str]:
    """:func:`clean_class_name` over a list."""
    return [clean_class_name(n) for n in names]


def mask_annotation(mask: np.ndarray, category_id: Optional[int], has_box: bool = True, **extra) -> dict:
    """One unified annotation from a binary mask: RLE segmentation, XYWH box of the mask
    (``category_id`` None: an unknown category, see ``annotation_checks``)."""
    rle = encode_mask(mask)
    ann = {
        "bbox": rle_xywh_box(rle),
        "bbox_mode": BoxMode.XYWH_ABS,
        "segmentation": rle,
        "category_id": None if category_id is None else int(category_id),
        "has_box": bool(has_box),
        "iscrowd": 0,
    }
    ann.update(extra)
    return ann


def label_map_annotations(label_map: np.ndarray, ignore_label: int, has_box: bool = False):
    """One annotation per class present in a semantic label map (pixel value = category id).

    Semantic regions merge instances, so their boxes are not meaningful (``has_box`` False)."""
    values = [int(v) for v in np.unique(label_map) if int(v) != ignore_label]
    return [mask_annotation(label_map == v, v, has_box=has_box) for v in values]


def map_with_progress(func: Callable, items: Sequence, desc: str, workers: int = 0) -> list:
    """``[func(x) for x in items]`` (in order) with a tqdm bar, on ``workers`` threads (image decoding
    and RLE encoding release the GIL). ``workers=0`` uses ``$MQFORMER_DATA_WORKERS`` (default 4)."""
    workers = workers or int(os.getenv("MQFORMER_DATA_WORKERS", "4"))
    return thread_map(func, items, max_workers=max(workers, 1), tqdm_class=tqdm, desc=desc,
                      disable=len(items) < 100, leave=False)


def register_dataset(
    name: str, loader: Callable[[], List[dict]], metadata: Optional[Metadata] = None, **meta
) -> None:
    """Register ``loader`` under ``name`` with metadata ``meta`` (which must name ``task``,
    ``evaluator_type`` and ``text_prompts`` unless ``metadata`` provides them lazily).

    Registering a name again replaces it (e.g. to re-root a family at another folder)."""
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    assert meta.get("task") in TASKS, f"{name}: unknown task {meta.get('task')!r}"
    assert "evaluator_type" in meta, f"{name}: metadata needs evaluator_type"
    DatasetCatalog.register(name, loader)
    if metadata is not None:
        MetadataCatalog[name] = metadata
    MetadataCatalog.get(name).set(**meta)
    if metadata is None:
        assert "text_prompts" in meta, f"{name}: metadata needs text_prompts"


def read_coco_categories(json_file: str) -> List[dict]:
    """The ``categories`` of a COCO-format json, sorted by id."""
    return sorted(load_json(json_file)["categories"], key=lambda c: c["id"])


class JsonCategoryMetadata(Metadata):
    """Metadata whose class list lives in a COCO-format json: ``category_json`` if set, else
    ``json_file``.

    ``thing_classes``, ``text_prompts`` and ``thing_dataset_id_to_contiguous_id`` are read from
    that json the first time one of them is accessed (never at registration), so vocabularies such
    as SeginW's or Objects365's are not duplicated in code. Category ``i`` of the json (sorted by
    id) gets contiguous id ``i``, as in :func:`coco_format.coco_records`.
    """

    _LAZY_KEYS = ("thing_classes", "text_prompts", "thing_dataset_id_to_contiguous_id")

    def __getattr__(self, key):
        source = self.__dict__.get("category_json", self.__dict__.get("json_file"))
        if key in JsonCategoryMetadata._LAZY_KEYS and source is not None:
            self._read_categories(source)
            return self.__dict__[key]
        return super().__getattr__(key)

    def _read_categories(self, json_file: str) -> None:
        categories = read_coco_categories(json_file)
        names = [c["name"] for c in categories]
        values = {
            "thing_classes": names,
            "text_prompts": clean_class_names(names),
            "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(categories)},
        }
        for key, value in values.items():
            self.__dict__.setdefault(key, value)
