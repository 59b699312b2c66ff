"""SeginW protocol: COCO mask AP (and box AP) per dataset, then mean and median over the suite.

Per dataset, :class:`SeginWEvaluator` is detectron2's ``COCOEvaluator`` with the official
pycocotools COCOeval (max 100 detections per image) against the dataset's own
``_annotations_min1cat.coco.json``; predicted vocabulary indices become the json's category ids
through the metadata (``thing_dataset_id_to_contiguous_id``, 0-based in SeginW). Its numbers are
exactly pycocotools' on the same predictions; a dataset on which the model predicts nothing at all
scores AP = AP50 = AP75 = 0 (COCOEvaluator would say NaN, which a suite mean cannot use).

Suite numbers: the trainer evaluates each ``DATASETS.TEST`` entry with :func:`build_evaluator`,
collects ``{dataset_name: results}``, then adds ``summarize_seginw_suites(results)``: one entry
per suite (metadata ``suite``, e.g. ``seginw`` or ``mqformer_shapes_seginw``) holding
:func:`summarize_seginw` over that suite's datasets.
"""
import logging
import math
from collections import OrderedDict
from typing import Dict, Mapping, Optional

import numpy as np
from detectron2.data import MetadataCatalog

from .adapters import OpenVocabCOCOEvaluator
from .common import total_over_processes

logger = logging.getLogger(__name__)

SEGINW_TASKS = ("bbox", "segm")
_ZERO_WITHOUT_PREDICTIONS = ("AP", "AP50", "AP75")


class SeginWEvaluator(OpenVocabCOCOEvaluator):
    """COCO segm and bbox AP of one SeginW-format dataset (see the module docstring).

    Returns ``{"segm": {"AP", "AP50", ...}, "bbox": {...}}`` in percent, as COCOEvaluator does."""

    def __init__(self, dataset_name: str, output_dir: Optional[str] = None):
        if MetadataCatalog.get(dataset_name).get("json_file", None) is None:
            raise ValueError(f"dataset {dataset_name!r}: SeginW evaluation needs metadata "
                             "'json_file' (the split's _annotations_min1cat.coco.json)")
        super().__init__(dataset_name, output_dir, tasks=SEGINW_TASKS)
        self._num_instances = 0

    def reset(self):
        super().reset()
        self._num_instances = 0

    def convert(self, input: dict, output: dict) -> dict:
        converted = super().convert(input, output)
        self._num_instances += len(converted["instances"])
        return converted

    def evaluate(self):
        num_instances = total_over_processes(self._num_instances)
        results = super().evaluate()
        if num_instances == 0 and results:
            logger.warning("%s: no instance predicted on any image; AP counts as 0.",
                           self.dataset_name)
            for task in SEGINW_TASKS:
                for metric in _ZERO_WITHOUT_PREDICTIONS:
                    results.setdefault(task, {})[metric] = 0.0
        return results


def _finite_values(results_by_dataset: Mapping[str, Mapping], task: str) -> Dict[str, float]:
    """{dataset: results[task]["AP"]} of the datasets where it is a finite number."""
    values = {}
    for name, results in results_by_dataset.items():
        value = results.get(task, {}).get("AP", math.nan)
        if math.isfinite(value):
            values[name] = float(value)
    return values


def summarize_seginw(results_by_dataset: Mapping[str, Mapping]) -> "OrderedDict[str, float]":
    """Mean and median of the per-dataset segm (and bbox) AP.

    Args:
        results_by_dataset: {dataset name: SeginWEvaluator results ({"segm": {"AP": ...}, ...})}.

    Returns:
        ``mean_segm_AP``, ``median_segm_AP``, ``num_datasets`` (those with a finite segm AP; a
        NaN AP means the split has no annotations and is left out), ``mean_bbox_AP`` and
        ``median_bbox_AP`` when every counted dataset has box AP.
    """
    missing = [name for name, r in results_by_dataset.items() if "segm" not in r]
    if missing:
        raise KeyError(f"SeginW summary: no 'segm' results for datasets {missing}")
    segm = _finite_values(results_by_dataset, "segm")
    if not segm:
        raise ValueError(f"SeginW summary: no dataset has a finite segm AP "
                         f"({sorted(results_by_dataset)})")
    summary = OrderedDict()
    summary["mean_segm_AP"] = float(np.mean(list(segm.values())))
    summary["median_segm_AP"] = float(np.median(list(segm.values())))
    summary["num_datasets"] = len(segm)
    bbox = _finite_values({name: results_by_dataset[name] for name in segm}, "bbox")
    if len(bbox) == len(segm):
        summary["mean_bbox_AP"] = float(np.mean(list(bbox.values())))
        summary["median_bbox_AP"] = float(np.median(list(bbox.values())))
    return summary


def summarize_seginw_suites(results_by_dataset: Mapping[str, Mapping]) -> "OrderedDict[str, dict]":
    """:func:`summarize_seginw` per suite over the results of datasets whose metadata
    ``evaluator_type`` is ``seginw``, keyed by the suite (metadata ``suite``, default
    ``seginw``). Results of other datasets are ignored; empty when there are none."""
    by_suite: Dict[str, Dict[str, Mapping]] = OrderedDict()
    for name, results in results_by_dataset.items():
        if name not in MetadataCatalog.list() or not isinstance(results, Mapping):
            continue
        metadata = MetadataCatalog.get(name)
        if metadata.get("evaluator_type", None) != "seginw" or not results:
            continue
        by_suite.setdefault(metadata.get("suite", "seginw"), OrderedDict())[name] = results
    summaries = OrderedDict()
    for suite, results in by_suite.items():
        summaries[suite] = summarize_seginw(results)
        logger.info("%s over %d datasets: %s", suite, len(results), dict(summaries[suite]))
    return summaries
