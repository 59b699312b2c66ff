"""Checks run before any training or evaluation work: every dataset named in the config exists,
and each test dataset's metadata has what its evaluator reads and its image files exist. (The
training sets' records are checked when the training loader loads them, before the first step:
`mqformer_d2.data.annotation_checks`.)"""
import difflib

from detectron2.data import DatasetCatalog, MetadataCatalog

from ..data.annotation_checks import check_image_files
from ..data.detectron2_datasets import adapt_detectron2_dataset

# evaluator_type -> metadata keys its evaluator (mqformer_d2.evaluation.build_evaluator) and the
# evaluation mapper read; a tuple means "one of these". Keep in step with evaluation/build.py.
EVALUATOR_METADATA = {
    "coco": ("text_prompts", ("json_file", "thing_classes")),
    "lvis": ("text_prompts", "json_file"),
    "seginw": ("text_prompts", "json_file"),
    "sem_seg": ("text_prompts", "stuff_classes", "ignore_label"),
    "coco_panoptic_seg": ("text_prompts", "panoptic_json", "panoptic_root",
                          ("thing_dataset_id_to_contiguous_id", "stuff_dataset_id_to_contiguous_id")),
    "referring": (),
    "foreground": ("text_prompts",),
    "matting": (),  # reads each record's alpha_file_name, no metadata
}


def check_dataset_names(cfg) -> None:
    """Raise a KeyError naming the config key, the unknown dataset name and the closest registered
    names when a DATASETS.TRAIN or DATASETS.TEST entry is not registered (e.g. a typo), so that it
    fails at start-up rather than at the first evaluation after training."""
    registered = DatasetCatalog.list()
    for key in ("TRAIN", "TEST"):
        for name in cfg.DATASETS[key]:
            if name not in registered:
                close = difflib.get_close_matches(name, registered, n=5, cutoff=0.6)
                raise KeyError(f"DATASETS.{key}: dataset {name!r} is not registered; closest registered "
                               f"names: {close or 'none'} (see datasets/README.md and docs/usage.md)")


def check_evaluator_metadata(name: str) -> None:
    """Raise a ValueError naming test dataset ``name`` and what its metadata lacks: a known
    ``evaluator_type``, or a key that evaluator reads (see ``EVALUATOR_METADATA``)."""
    metadata = MetadataCatalog.get(name)
    evaluator_type = metadata.get("evaluator_type", None)
    if evaluator_type not in EVALUATOR_METADATA:
        raise ValueError(f"DATASETS.TEST: dataset {name!r}: metadata evaluator_type {evaluator_type!r} "
                         f"has no evaluator; known types: {sorted(EVALUATOR_METADATA)}")
    for keys in EVALUATOR_METADATA[evaluator_type]:
        options = keys if isinstance(keys, tuple) else (keys,)
        if all(_is_unset(metadata.get(key, None)) for key in options):
            raise ValueError(f"DATASETS.TEST: dataset {name!r}: its {evaluator_type!r} evaluator needs "
                             f"metadata {' or '.join(repr(k) for k in options)}, which is not set or empty")


def _is_unset(value) -> bool:
    """None, or an empty list / dict / string (e.g. `text_prompts=[]`: nothing to evaluate)."""
    return value is None or (isinstance(value, (list, tuple, dict, str)) and len(value) == 0)


def check_datasets(cfg) -> None:
    """The start-up checks: dataset names (`check_dataset_names`), then of every DATASETS.TEST
    entry the metadata (`check_evaluator_metadata`, after `adapt_detectron2_dataset` has filled in
    what a detectron2-style registration lacks) and the image files (loads its records)."""
    check_dataset_names(cfg)
    records = {name: DatasetCatalog.get(name) for name in cfg.DATASETS.TEST}
    for name in cfg.DATASETS.TEST:
        adapt_detectron2_dataset(name, records[name])
        check_evaluator_metadata(name)
    for name in cfg.DATASETS.TEST:
        check_image_files(name, records[name], "test")
