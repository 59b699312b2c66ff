"""Alpha-matting metrics (``evaluator_type`` "matting"): SAD, MSE, Grad and Conn
(`mqformer_d2.matting.metrics`) over the trimap's unknown pixels and over the whole image,
per image, averaged over images (as the Composition-1k evaluation reports them).

Inputs are dataset records with ``alpha_file_name`` (an 8- or 16-bit matte of the image's size)
and optionally ``trimap_file_name``; without a trimap one is made from the ground-truth alpha
(its transition region dilated by ``trimap_dilation`` pixels). Outputs carry ``"alpha"``: an
(H, W) tensor or array in [0, 1] at the image's size. Also reported: ``num_images``.
"""
import logging
from collections import OrderedDict
from typing import Dict, List

import numpy as np
import torch
from detectron2.evaluation import DatasetEvaluator

from ..matting.files import read_alpha, read_trimap
from ..matting.metrics import matting_errors
from ..matting.trimap import trimap_from_alpha
from .common import gather_records

logger = logging.getLogger(__name__)
DEFAULT_TRIMAP_DILATION = 3


def ground_truth(input: dict, trimap_dilation: int = DEFAULT_TRIMAP_DILATION):
    """(alpha (H, W) float in [0, 1], trimap (H, W) uint8) of a matting record."""
    if "alpha_file_name" not in input:
        raise KeyError(f"matting evaluation: record {input.get('file_name')!r} has no "
                       "'alpha_file_name' (is this a matting dataset?)")
    size = (input["height"], input["width"])
    alpha = read_alpha(input["alpha_file_name"], size)
    if input.get("trimap_file_name"):
        return alpha, read_trimap(input["trimap_file_name"], size)
    return alpha, trimap_from_alpha(alpha, trimap_dilation)


def _as_array(alpha) -> np.ndarray:
    if isinstance(alpha, torch.Tensor):
        alpha = alpha.detach().to("cpu", torch.float64).numpy()
    return np.asarray(alpha, np.float64)


class MattingEvaluator(DatasetEvaluator):
    """Per-image SAD / MSE / Grad / Conn of ``output["alpha"]``; see the module docstring."""

    def __init__(self, dataset_name: str, trimap_dilation: int = DEFAULT_TRIMAP_DILATION):
        self.dataset_name = dataset_name
        self.trimap_dilation = trimap_dilation
        self._records: List[Dict[str, float]] = []

    def reset(self):
        self._records = []

    def process(self, inputs, outputs):
        for input, output in zip(inputs, outputs):
            if "alpha" not in output:
                continue
            gt, trimap = ground_truth(input, self.trimap_dilation)
            pred = _as_array(output["alpha"])
            if pred.shape != gt.shape:
                raise ValueError(f"dataset {self.dataset_name!r}, image {input.get('file_name')!r}: "
                                 f"alpha of size {pred.shape}, ground truth {gt.shape}")
            self._records.append(matting_errors(np.clip(pred, 0, 1), gt, trimap))

    def evaluate(self):
        records = gather_records(self._records)
        if records is None:
            return {}
        if not records:
            logger.warning("MattingEvaluator(%s): no alpha evaluated.", self.dataset_name)
            return {}
        results = OrderedDict((key, float(np.mean([r[key] for r in records]))) for key in records[0])
        results["num_images"] = len(records)
        logger.info("Matting results on %s: %s", self.dataset_name, dict(results))
        return {"matting": results}
