"""Foreground (salient-object) segmentation metrics: MAE and max F-measure, per dataset.

Conventions of the salient-object-detection toolboxes (Fan et al.'s evaluation code, PySODMetrics):

- the prediction is the (1, H, W) ``sem_seg`` foreground score map clamped to [0, 1] and, by
  default, min-max normalised per image (``normalize=True``; a constant map is left as it is);
- the ground truth is the union of the input's annotation masks (no annotation = all background);
- MAE: mean absolute difference between the map and the binary ground truth, per image, averaged
  over images;
- F-measure at threshold t in 0..255: the map is quantised to 8 bits (``floor(255 * p)``) and a
  pixel is foreground when its value is >= t; F = (1 + b2) P R / (b2 P + R) with b2 = 0.3
  (P = 0 when nothing is predicted, R = TP / max(#GT pixels, 1), F = 0 when P R = 0). The per-image
  F curves are averaged over images; ``maxF`` is the maximum of that mean curve.

Both metrics are reported in [0, 1] (as the literature does), plus ``num_images``.
"""
import logging
from collections import OrderedDict
from typing import List, Tuple

import numpy as np
import torch
from detectron2.evaluation import DatasetEvaluator

from .common import annotation_mask, gather_records

logger = logging.getLogger(__name__)

BETA_SQUARED = 0.3
NUM_LEVELS = 256


def foreground_map(scores: torch.Tensor, normalize: bool) -> np.ndarray:
    """(H, W) float64 map in [0, 1] from a (1, H, W) score tensor."""
    if scores.dim() != 3 or scores.shape[0] != 1:
        raise ValueError(f"foreground sem_seg must be (1, H, W), got {tuple(scores.shape)}")
    prediction = scores[0].detach().to("cpu", torch.float64).clamp(0, 1).numpy()
    if normalize and prediction.size and prediction.max() > prediction.min():
        low, high = prediction.min(), prediction.max()
        prediction = (prediction - low) / (high - low)
    return prediction


def f_measure_curve(prediction: np.ndarray, gt: np.ndarray, beta_squared: float = BETA_SQUARED) -> np.ndarray:
    """(256,) F-measure at thresholds 0..255 of a [0, 1] map against a bool ground truth."""
    levels = np.floor(prediction * (NUM_LEVELS - 1)).astype(np.int64)
    fg_hist = np.bincount(levels[gt], minlength=NUM_LEVELS)
    bg_hist = np.bincount(levels[~gt], minlength=NUM_LEVELS)
    # pixels at level >= t, for t = 0..255
    true_positives = np.cumsum(fg_hist[::-1])[::-1].astype(np.float64)
    predicted = true_positives + np.cumsum(bg_hist[::-1])[::-1]
    precision = np.divide(true_positives, predicted, out=np.zeros(NUM_LEVELS), where=predicted > 0)
    recall = true_positives / max(int(gt.sum()), 1)
    numerator = (1 + beta_squared) * precision * recall
    denominator = beta_squared * precision + recall
    return np.divide(numerator, denominator, out=np.zeros(NUM_LEVELS), where=numerator > 0)


def foreground_gt(input: dict, where: str) -> np.ndarray:
    """(H, W) bool union of the input's annotation masks."""
    height, width = input["height"], input["width"]
    gt = np.zeros((height, width), dtype=bool)
    for annotation in input.get("annotations", []):
        gt |= annotation_mask(annotation, height, width, where)
    return gt


class ForegroundEvaluator(DatasetEvaluator):
    """MAE and max F-measure of ``sem_seg`` foreground maps; see the module docstring."""

    def __init__(self, dataset_name: str, normalize: bool = True, beta_squared: float = BETA_SQUARED):
        self.dataset_name = dataset_name
        self.normalize = normalize
        self.beta_squared = beta_squared
        self._records: List[Tuple[float, np.ndarray]] = []

    def reset(self):
        self._records = []

    def process(self, inputs, outputs):
        for input, output in zip(inputs, outputs):
            if "sem_seg" not in output:
                continue
            where = f"dataset {self.dataset_name!r}, image {input.get('image_id', input.get('file_name'))!r}"
            if "annotations" not in input:
                raise KeyError(f"{where}: input has no 'annotations' (use the eval mapper)")
            gt = foreground_gt(input, where)
            prediction = foreground_map(output["sem_seg"], self.normalize)
            if prediction.shape != gt.shape:
                raise ValueError(f"{where}: map of size {prediction.shape}, image size {gt.shape}")
            mae = float(np.abs(prediction - gt).mean())
            curve = f_measure_curve(prediction, gt, self.beta_squared)
            self._records.append((mae, curve))

    def evaluate(self):
        records = gather_records(self._records)
        if records is None:
            return {}
        if not records:
            logger.warning("ForegroundEvaluator(%s): no foreground map evaluated.", self.dataset_name)
            return {}
        curve = np.mean(np.stack([r[1] for r in records]), axis=0)
        results = OrderedDict()
        results["MAE"] = float(np.mean([r[0] for r in records]))
        results["maxF"] = float(curve.max())
        results["num_images"] = len(records)
        logger.info("Foreground results on %s: %s", self.dataset_name, dict(results))
        return {"foreground": results}
