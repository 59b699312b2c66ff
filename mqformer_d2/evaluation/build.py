"""``build_evaluator``: the evaluator(s) of a dataset, chosen from its metadata ``evaluator_type``.

- ``coco``: :class:`OpenVocabCOCOEvaluator`, bbox + segm AP (bbox only for ``task="detection"``);
- ``lvis``: :class:`OpenVocabLVISEvaluator`;
- ``seginw``: :class:`SeginWEvaluator`;
- ``sem_seg``: :class:`OpenVocabSemSegEvaluator`;
- ``coco_panoptic_seg``: :class:`OpenVocabPanopticEvaluator`, plus instance AP when the metadata
  has ``json_file``, and semantic mIoU when it has ``sem_seg_root`` and a stuff id map covering
  every class; each runs only on the outputs the model gives (a ``panoptic`` task gives
  ``panoptic_seg`` only, the ``all`` task all three);
- ``referring``: :class:`ReferringEvaluator` (``cfg.TEST.REFERRING_FIRST_SENTENCE_ONLY`` when the
  config has it, default False: every sentence);
- ``foreground``: :class:`ForegroundEvaluator`;
- ``matting``: :class:`MattingEvaluator` (alpha mattes: SAD, MSE, Grad, Conn).
"""
import logging
from typing import Callable, Dict, List, Optional

from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator, DatasetEvaluators

from .adapters import (
    OpenVocabCOCOEvaluator,
    OpenVocabLVISEvaluator,
    OpenVocabPanopticEvaluator,
    OpenVocabSemSegEvaluator,
    covers_every_class,
)
from .foreground import ForegroundEvaluator
from .matting import MattingEvaluator
from .referring import ReferringEvaluator
from .seginw import SeginWEvaluator

logger = logging.getLogger(__name__)


def _instance_tasks(name: str) -> tuple:
    """COCO iou types: boxes only for detection datasets (their json has no masks)."""
    detection = MetadataCatalog.get(name).get("task", None) == "detection"
    return ("bbox",) if detection else ("bbox", "segm")


def _coco(cfg, name: str, output_folder: Optional[str]) -> List[DatasetEvaluator]:
    return [OpenVocabCOCOEvaluator(name, output_folder, tasks=_instance_tasks(name))]


def _panoptic(cfg, name: str, output_folder: Optional[str]) -> List[DatasetEvaluator]:
    metadata = MetadataCatalog.get(name)
    evaluators: List[DatasetEvaluator] = [OpenVocabPanopticEvaluator(name, output_folder)]
    if metadata.get("json_file", None) is not None:
        evaluators.append(OpenVocabCOCOEvaluator(name, output_folder, tasks=_instance_tasks(name)))
    if metadata.get("sem_seg_root", None) is not None:
        if covers_every_class(name):
            evaluators.append(OpenVocabSemSegEvaluator(name, output_folder))
        else:
            logger.warning("%s: no semantic evaluation (stuff_dataset_id_to_contiguous_id does "
                           "not cover the thing classes, which SemSegEvaluator needs)", name)
    return evaluators


def _referring(cfg, name: str, output_folder: Optional[str]) -> List[DatasetEvaluator]:
    first_only = bool(cfg.TEST.REFERRING_FIRST_SENTENCE_ONLY) if cfg is not None else False
    return [ReferringEvaluator(name, first_sentence_only=first_only)]


_BUILDERS: Dict[str, Callable] = {
    "coco": _coco,
    "lvis": lambda cfg, name, out: [OpenVocabLVISEvaluator(name, out)],
    "seginw": lambda cfg, name, out: [SeginWEvaluator(name, out)],
    "sem_seg": lambda cfg, name, out: [OpenVocabSemSegEvaluator(name, out)],
    "coco_panoptic_seg": _panoptic,
    "referring": _referring,
    "foreground": lambda cfg, name, out: [ForegroundEvaluator(name)],
    "matting": lambda cfg, name, out: [MattingEvaluator(name)],
}


def build_evaluator(cfg, dataset_name: str, output_folder: Optional[str] = None) -> DatasetEvaluator:
    """The evaluator of ``dataset_name`` for its metadata ``evaluator_type`` (see the module
    table); a ``DatasetEvaluators`` when there are several. Never looks at the dataset's name.

    Args:
        cfg: the config (``TEST.REFERRING_FIRST_SENTENCE_ONLY`` selects the referring protocol).
        dataset_name: a registered dataset.
        output_folder: where detectron2's evaluators dump predictions (optional).
    """
    evaluator_type = MetadataCatalog.get(dataset_name).get("evaluator_type", None)
    if evaluator_type not in _BUILDERS:
        raise ValueError(
            f"dataset {dataset_name!r}: metadata evaluator_type {evaluator_type!r} has no "
            f"evaluator; known types: {sorted(_BUILDERS)}"
        )
    evaluators = _BUILDERS[evaluator_type](cfg, dataset_name, output_folder)
    return evaluators[0] if len(evaluators) == 1 else DatasetEvaluators(evaluators)
