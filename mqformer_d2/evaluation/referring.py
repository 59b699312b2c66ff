"""Referring segmentation metrics (RefCOCO / RefCOCO+ / RefCOCOg protocol).

Per evaluated sentence, with I / U the intersection / union pixel counts of the predicted and the
ground-truth mask (decoded from the input's original annotation at the original size):

- ``cIoU`` (a.k.a. overall IoU): sum of I / sum of U over all sentences;
- ``mIoU``: mean over sentences of I / U (a sentence with U = 0 counts IoU 0);
- ``Prec@k`` for k in 0.5 .. 0.9: fraction of sentences with IoU >= k;
- ``box_Prec@0.5``: fraction with box IoU >= 0.5, when the output carries ``boxes`` (XYXY);
- ``num_sentences``.

All but ``num_sentences`` are in percent. By default every sentence of every referred object is
evaluated (the standard protocol); ``first_sentence_only=True`` evaluates only each object's first
sentence (X-Decoder's protocol).
"""
import logging
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.evaluation import DatasetEvaluator
from detectron2.structures import Boxes, BoxMode, pairwise_iou

from .common import annotation_mask, gather_records

logger = logging.getLogger(__name__)

DEFAULT_IOU_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
# One evaluated sentence: (intersection, union, box IoU or None when no box was predicted).
SentenceRecord = Tuple[int, int, Optional[float]]


def evaluated_sentences(owners: Sequence[int], first_sentence_only: bool) -> List[int]:
    """Indices of the sentences to evaluate; ``owners[t]`` is sentence t's annotation index."""
    if not first_sentence_only:
        return list(range(len(owners)))
    seen, first = set(), []
    for index, owner in enumerate(owners):
        if owner not in seen:
            seen.add(owner)
            first.append(index)
    return first


def gt_box_xyxy(annotation: dict) -> torch.Tensor:
    """(1, 4) XYXY box of a unified annotation."""
    box = BoxMode.convert(list(annotation["bbox"]), annotation["bbox_mode"], BoxMode.XYXY_ABS)
    return torch.tensor([box], dtype=torch.float32)


class ReferringEvaluator(DatasetEvaluator):
    """cIoU, mIoU, Prec@k (and box Prec@0.5) of ``referring`` outputs; see the module docstring.

    Inputs must carry ``vocabulary`` (the sentences), ``sentence_annotation_index`` and the
    original ``annotations``, as the eval ``UnifiedDatasetMapper`` gives them."""

    def __init__(self, dataset_name: str, first_sentence_only: bool = False,
                 iou_thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS):
        self.dataset_name = dataset_name
        self.first_sentence_only = first_sentence_only
        self.iou_thresholds = tuple(iou_thresholds)
        self._records: List[SentenceRecord] = []

    def reset(self):
        self._records = []

    def process(self, inputs, outputs):
        for input, output in zip(inputs, outputs):
            if "referring" in output:
                self._records.extend(self._image_records(input, output["referring"]))

    def _where(self, input: dict) -> str:
        return f"dataset {self.dataset_name!r}, image {input.get('image_id', input.get('file_name'))!r}"

    def _check(self, input: dict, prediction: dict) -> Tuple[List[int], torch.Tensor]:
        """(sentence owners, (T, H, W) bool masks on CPU), validated against the input."""
        for key in ("sentence_annotation_index", "annotations"):
            if key not in input:
                raise KeyError(f"{self._where(input)}: input has no {key!r} (use the eval mapper)")
        owners = list(input["sentence_annotation_index"])
        masks = prediction["masks"].to("cpu").bool()
        if len(prediction["texts"]) != len(owners) or masks.shape[0] != len(owners):
            raise ValueError(f"{self._where(input)}: {len(prediction['texts'])} predicted texts / "
                             f"{masks.shape[0]} masks for {len(owners)} input sentences")
        size = (input["height"], input["width"])
        if len(owners) and tuple(masks.shape[1:]) != size:
            raise ValueError(f"{self._where(input)}: masks of size {tuple(masks.shape[1:])}, "
                             f"image size {size}")
        return owners, masks

    def _image_records(self, input: dict, prediction: dict) -> List[SentenceRecord]:
        owners, masks = self._check(input, prediction)
        annotations = input["annotations"]
        boxes = prediction.get("boxes")
        gt_masks = {}
        records = []
        for index in evaluated_sentences(owners, self.first_sentence_only):
            owner = owners[index]
            if owner not in gt_masks:
                gt_masks[owner] = torch.from_numpy(annotation_mask(
                    annotations[owner], input["height"], input["width"], self._where(input)))
            gt, pred = gt_masks[owner], masks[index]
            box_iou = None
            if boxes is not None:
                predicted = Boxes(torch.as_tensor(boxes[index], dtype=torch.float32).cpu().view(1, 4))
                box_iou = float(pairwise_iou(predicted, Boxes(gt_box_xyxy(annotations[owner])))[0, 0])
            records.append((int((gt & pred).sum()), int((gt | pred).sum()), box_iou))
        return records

    def evaluate(self):
        records = gather_records(self._records)
        if records is None:
            return {}
        if not records:
            logger.warning("ReferringEvaluator(%s): no sentence evaluated.", self.dataset_name)
            return {}
        return {"referring": self.metrics(records)}

    def metrics(self, records: Sequence[SentenceRecord]) -> "OrderedDict[str, float]":
        """The metrics of the module docstring from per-sentence records."""
        intersection = np.array([r[0] for r in records], dtype=np.float64)
        union = np.array([r[1] for r in records], dtype=np.float64)
        iou = np.divide(intersection, union, out=np.zeros_like(union), where=union > 0)
        results = OrderedDict()
        results["cIoU"] = 100.0 * float(intersection.sum() / max(union.sum(), 1.0))
        results["mIoU"] = 100.0 * float(iou.mean())
        for threshold in self.iou_thresholds:
            results[f"Prec@{threshold:g}"] = 100.0 * float((iou >= threshold).mean())
        box_ious = [r[2] for r in records if r[2] is not None]
        if box_ious and len(box_ious) == len(records):
            results["box_Prec@0.5"] = 100.0 * float((np.array(box_ious) >= 0.5).mean())
        results["num_sentences"] = len(records)
        logger.info("Referring results on %s (%s): %s", self.dataset_name,
                    "first sentence only" if self.first_sentence_only else "all sentences",
                    dict(results))
        return results
