"""Datasets registered the detectron2 way, used as they are.

detectron2's registrations (``register_coco_instances``, ``register_coco_panoptic``, ``load_sem_seg``
folders, the builtin ``coco_2017_*``, ``coco_2017_*_panoptic``, ``ade20k_sem_seg_*``, ...) give
records in detectron2's standard format and metadata without MQ-Former's two keys. This module
fills them in, never changing a key the metadata already has:

- ``text_prompts``: the cleaned class names; ``stuff_classes`` for semantic and panoptic data
  (whose label values and contiguous ids index them), ``thing_classes`` otherwise;
- ``task``: from the records (a panoptic PNG, a semantic label file without annotations, masks or
  boxes only), else from ``evaluator_type``.

Panoptic records (``pan_seg_file_name`` + ``segments_info``) need no conversion here: the training
mapper turns each image's segments into targets when it loads the image.
"""
import logging
from typing import List, Optional, Sequence

from detectron2.data import MetadataCatalog

from .datasets.common import clean_class_names

logger = logging.getLogger(__name__)

# evaluator_type -> task, for datasets whose records do not decide it.
EVALUATOR_TASKS = {
    "coco": "instance",
    "lvis": "instance",
    "seginw": "instance",
    "sem_seg": "semantic",
    "coco_panoptic_seg": "panoptic",
    "referring": "referring",
    "foreground": "foreground",
}
_CLASS_KEYS = {"semantic": ("stuff_classes", "thing_classes"), "panoptic": ("stuff_classes", "thing_classes")}
_RECORDS_LOOKED_AT = 50  # records inspected to tell masks from boxes


def task_of_records(records: Sequence[dict]) -> Optional[str]:
    """The task that detectron2-format ``records`` hold, or None when they do not tell: panoptic
    (a panoptic PNG), semantic (a label file and no annotations), instance (some annotation has a
    mask) or detection (boxes only)."""
    sample = list(records[:_RECORDS_LOOKED_AT])
    if any("pan_seg_file_name" in r for r in sample):
        return "panoptic"
    if sample and all("sem_seg_file_name" in r and not r.get("annotations") for r in sample):
        return "semantic"
    annotations = [a for r in sample for a in r.get("annotations", [])]
    if not annotations:
        return None
    return "instance" if any("segmentation" in a for a in annotations) else "detection"


def _is_separated_panoptic(metadata) -> bool:
    """detectron2's "separated" COCO panoptic layout (Panoptic FPN's): things from an instances
    json, stuff from a PNG whose label 0 is the one class "things"."""
    stuff = metadata.get("stuff_classes", None) or []
    return metadata.get("evaluator_type", None) == "coco_panoptic_seg" and len(stuff) > 0 and stuff[0] == "things"


def prompts_from_classes(name: str, task: Optional[str]) -> Optional[List[str]]:
    """Cleaned class names of dataset ``name`` for ``task`` (see the module docstring), or None
    when its metadata has no class list."""
    metadata = MetadataCatalog.get(name)
    for key in _CLASS_KEYS.get(task, ("thing_classes", "stuff_classes")):
        classes = metadata.get(key, None)
        if classes:
            return clean_class_names(classes)
    return None


def adapt_detectron2_dataset(name: str, records: Optional[Sequence[dict]] = None) -> None:
    """Give dataset ``name`` the metadata MQ-Former reads (``task``, ``text_prompts``) when it was
    registered without them; ``records`` (its loaded dicts) decide the task and, for
    ``register_coco_instances``, bring the class names (detectron2 sets ``thing_classes`` when it
    loads the json). A no-op for datasets that have both keys. Raises a ValueError naming the
    dataset for detectron2's separated panoptic layout, which has no single class list."""
    metadata = MetadataCatalog.get(name)
    task = metadata.get("task", None)
    if task is None:
        task = (task_of_records(records) if records else None) or EVALUATOR_TASKS.get(
            metadata.get("evaluator_type", None))
        if task is None:
            return  # nothing tells; the checks name what is missing
        if _is_separated_panoptic(metadata):
            raise ValueError(
                f"dataset {name!r} uses detectron2's separated panoptic layout (stuff PNGs whose label 0 is "
                "'things'), whose thing and stuff ids overlap: train and evaluate on the standard "
                "registration instead (e.g. 'coco_2017_train_panoptic' for 'coco_2017_train_panoptic_separated', "
                "or detectron2's register_coco_panoptic)")
        metadata.set(task=task)
        logger.info("dataset %r: task %r (not in its metadata; from its %s)", name, task,
                    "records" if records else "evaluator_type")
    if metadata.get("text_prompts", None) is None:
        prompts = prompts_from_classes(name, task)
        if prompts is not None:
            metadata.set(text_prompts=prompts)
            logger.info("dataset %r: text prompts from its class names (%d)", name, len(prompts))
