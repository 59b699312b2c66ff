"""Detectron2 registration of the ``mqformer_shapes`` benchmark (DatasetCatalog + MetadataCatalog).

Registering is lazy: it only computes paths. The first ``DatasetCatalog.get`` of any name generates
the benchmark (see ``benchmark.ensure_benchmark``); later calls reuse the cached copy. Every loader
reads the split's real on-disk format through the same loaders as the real datasets of
``mqformer_d2.data.datasets`` (COCO json, panoptic PNG + json, semantic PNGs, image / mask folder
pairs, SeginW folders; refs json like RefCOCO's records) and returns the unified dataset dicts of
docs/data_format.md. Names (``<split>`` is ``train`` or ``val``):

* ``mqformer_shapes_<split>`` and ``mqformer_shapes_<split>_panoptic``: things (boxes) + stuff
  (``has_box`` False), category ids over ``ALL_CLASSES``;
* ``mqformer_shapes_<split>_{instance,semantic,referring,foreground,detection}``;
* ``mqformer_shapes_seginw_<Name>_<split>``: the SeginW-format open-vocabulary suite.
"""
import functools
import os
from typing import Dict, List, Optional

from ..datasets.coco_format import coco_annotation, coco_records
from ..datasets.common import load_json, register_dataset
from ..datasets.foreground import load_foreground_pairs
from ..datasets.panoptic import add_panoptic_annotations, load_panoptic_records
from ..datasets.semantic import load_semantic_unified
from ..datasets.seginw import load_seginw_split
from .benchmark import ShapesBenchmarkConfig, ensure_benchmark
from .layout import SPLITS, Layout, default_root
from .vocabulary import ALL_CLASSES, IGNORE_LABEL, SUITE, THING_CLASSES, SuiteDataset

_THING_ID_MAP = {i + 1: i for i in range(len(THING_CLASSES))}  # json id -> contiguous index
_ALL_ID_MAP = {i + 1: i for i in range(len(ALL_CLASSES))}


def _with_image_ids(records: List[dict]) -> List[dict]:
    """Folder-pair loaders give no ``image_id``: use the file stem (``000001``)."""
    for record in records:
        record["image_id"] = os.path.splitext(os.path.basename(record["file_name"]))[0]
    return records


def load_instance(root, config, split, dataset_name) -> List[dict]:
    """Things only, from ``instances_<split>.json`` (RLE masks)."""
    layout = Layout(ensure_benchmark(root, config))
    return coco_records(load_json(layout.instances_json(split)), layout.images(split),
                        source=layout.instances_json(split))


def load_detection(root, config, split, dataset_name) -> List[dict]:
    """Box-only targets (no ``segmentation``) from ``detection_<split>.json``."""
    layout = Layout(ensure_benchmark(root, config))
    return coco_records(load_json(layout.detection_json(split)), layout.detection_images(split),
                        with_masks=False, source=layout.detection_json(split))


def load_panoptic(root, config, split, dataset_name) -> List[dict]:
    """Things + stuff from ``panoptic_<split>.json`` and the panoptic PNGs (``segments_info``
    category ids contiguous over ``ALL_CLASSES``); ``sem_seg_file_name`` for semantic metrics."""
    layout = Layout(ensure_benchmark(root, config))
    records = load_panoptic_records(layout.panoptic_json(split), layout.images(split),
                                    layout.panoptic(split), _THING_ID_MAP, _ALL_ID_MAP,
                                    image_ext=".png")
    for record in records:
        name = os.path.basename(record["pan_seg_file_name"])
        record["sem_seg_file_name"] = os.path.join(layout.semantic(split), name)
    return add_panoptic_annotations(records, desc=f"{dataset_name} -> unified", source=layout.panoptic_json(split))


def load_semantic(root, config, split, dataset_name) -> List[dict]:
    """Semantic label PNGs, one target per class present (``has_box`` False)."""
    layout = Layout(ensure_benchmark(root, config))
    return _with_image_ids(load_semantic_unified(layout.semantic(split), layout.images(split),
                                                 IGNORE_LABEL, gt_ext="png", image_ext="png"))


def load_referring(root, config, split, dataset_name) -> List[dict]:
    """One dict per image that has referring expressions; one target per referred object with all
    its sentences in ``texts`` (and ``sent_ids``, ``ref_id``, ``ann_id``), as RefCOCO's records."""
    layout = Layout(ensure_benchmark(root, config))
    instances = load_json(layout.instances_json(split))
    anns = {ann["id"]: ann for ann in instances["annotations"]}
    targets: Dict[int, List[dict]] = {}
    for ref in load_json(layout.refs_json(split)):
        target = dict(coco_annotation(anns[ref["ann_id"]], _THING_ID_MAP), texts=ref["sentences"],
                      sent_ids=ref["sent_ids"], ref_id=ref["ref_id"], ann_id=ref["ann_id"])
        targets.setdefault(ref["image_id"], []).append(target)
    records = coco_records(dict(instances, annotations=[]), layout.images(split))
    return [dict(record, annotations=targets[record["image_id"]])
            for record in records if record["image_id"] in targets]


def load_foreground(root, config, split, dataset_name) -> List[dict]:
    """Image folder + binary-mask folder with the same file names (mask as
    ``sem_seg_file_name``, as for DUTS)."""
    layout = Layout(ensure_benchmark(root, config))
    return _with_image_ids(load_foreground_pairs(
        layout.foreground_images(split), layout.foreground_masks(split), image_ext="png"))


def load_seginw(root, config, dataset: SuiteDataset, split, dataset_name) -> List[dict]:
    """A suite split, read by the generic SeginW loader (COCO json beside the images, 0-based
    contiguous category ids)."""
    layout = Layout(ensure_benchmark(root, config))
    return load_seginw_split(layout.seginw_json(dataset.name, split),
                             layout.seginw_dir(dataset.name, split))


def _thing_metadata() -> dict:
    return {"text_prompts": list(THING_CLASSES), "thing_classes": list(THING_CLASSES),
            "thing_dataset_id_to_contiguous_id": dict(_THING_ID_MAP)}


def _panoptic_metadata(layout: Layout, split: str) -> dict:
    """Detectron2's panoptic convention: ``stuff_classes`` lists every class (things too), the
    contiguous index is shared by both id maps; ``json_file`` allows instance AP on the same
    split."""
    return {
        "task": "panoptic", "evaluator_type": "coco_panoptic_seg",
        "text_prompts": list(ALL_CLASSES), "thing_classes": list(THING_CLASSES),
        "stuff_classes": list(ALL_CLASSES),
        "thing_dataset_id_to_contiguous_id": dict(_THING_ID_MAP),
        "stuff_dataset_id_to_contiguous_id": dict(_ALL_ID_MAP),
        "image_root": layout.images(split), "panoptic_root": layout.panoptic(split),
        "panoptic_json": layout.panoptic_json(split), "json_file": layout.instances_json(split),
        "sem_seg_root": layout.semantic(split), "ignore_label": IGNORE_LABEL,
    }


def _split_registrations(layout: Layout, split: str) -> Dict[str, tuple]:
    """dataset name -> (loader taking (root, config, split, name), metadata) for one split."""
    prefix = f"mqformer_shapes_{split}"
    panoptic = (load_panoptic, _panoptic_metadata(layout, split))
    return {
        prefix: panoptic,
        f"{prefix}_panoptic": panoptic,
        f"{prefix}_instance": (load_instance, dict(
            _thing_metadata(), task="instance", evaluator_type="coco",
            json_file=layout.instances_json(split), image_root=layout.images(split))),
        f"{prefix}_semantic": (load_semantic, {
            "task": "semantic", "evaluator_type": "sem_seg", "text_prompts": list(ALL_CLASSES),
            "stuff_classes": list(ALL_CLASSES), "ignore_label": IGNORE_LABEL,
            "stuff_dataset_id_to_contiguous_id": dict(_ALL_ID_MAP),
            "sem_seg_root": layout.semantic(split), "image_root": layout.images(split)}),
        f"{prefix}_referring": (load_referring, dict(
            _thing_metadata(), task="referring", evaluator_type="referring",
            refs_file=layout.refs_json(split), json_file=layout.instances_json(split),
            image_root=layout.images(split))),
        f"{prefix}_foreground": (load_foreground, {
            "task": "foreground", "evaluator_type": "foreground",
            "text_prompts": ["foreground"], "thing_classes": ["foreground"],
            "image_root": layout.foreground_images(split),
            "sem_seg_root": layout.foreground_masks(split)}),
        f"{prefix}_detection": (load_detection, dict(
            _thing_metadata(), task="detection", evaluator_type="coco",
            json_file=layout.detection_json(split), image_root=layout.detection_images(split))),
    }


def _seginw_registration(layout: Layout, dataset: SuiteDataset, split: str) -> tuple:
    """(loader, metadata) of one split of one suite dataset, as the real SeginW is registered."""
    names = dataset.class_names
    metadata = {
        "task": "instance", "evaluator_type": "seginw", "text_prompts": list(names),
        "thing_classes": list(names),
        "thing_dataset_id_to_contiguous_id": {i: i for i in range(len(names))},
        "json_file": layout.seginw_json(dataset.name, split),
        "image_root": layout.seginw_dir(dataset.name, split),
        "suite": "mqformer_shapes_seginw", "suite_dataset": dataset.name,
    }
    return functools.partial(load_seginw, dataset=dataset), metadata


def register_shapes_benchmark(root: Optional[str] = None,
                              config: Optional[ShapesBenchmarkConfig] = None) -> List[str]:
    """Register every ``mqformer_shapes_*`` name, rooted at ``root`` (default
    ``$DETECTRON2_DATASETS``, else ``datasets``) and generated with ``config`` on first load.
    Nothing is read or written here. Calling it again re-points the names. Returns the names."""
    root = os.path.abspath(root or default_root())
    config = config or ShapesBenchmarkConfig()
    layout = Layout.under_root(root)
    registered = []
    for split in SPLITS:
        entries = dict(_split_registrations(layout, split))
        for dataset in SUITE:
            entries[f"mqformer_shapes_seginw_{dataset.name}_{split}"] = _seginw_registration(
                layout, dataset, split)
        for name, (load, metadata) in entries.items():
            loader = functools.partial(load, root, config, split=split, dataset_name=name)
            register_dataset(name, loader, **metadata, benchmark_root=layout.base)
            registered.append(name)
    return registered
