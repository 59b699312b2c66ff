"""Evaluators (detectron2's ``DatasetEvaluator`` interface) for every task MQ-Former predicts.

``build_evaluator(cfg, dataset_name, output_folder)`` picks them from the dataset's metadata
``evaluator_type``; after evaluating several datasets, ``summarize_seginw_suites(results)`` adds
the mean / median AP of each SeginW-format suite.
"""
from .adapters import (
    OpenVocabCOCOEvaluator,
    OpenVocabLVISEvaluator,
    OpenVocabPanopticEvaluator,
    OpenVocabSemSegEvaluator,
)
from .build import build_evaluator
from .common import VocabularyMapper, annotation_mask
from .foreground import ForegroundEvaluator, f_measure_curve
from .matting import MattingEvaluator
from .referring import ReferringEvaluator
from .seginw import SeginWEvaluator, summarize_seginw, summarize_seginw_suites

__all__ = [
    "ForegroundEvaluator",
    "MattingEvaluator",
    "OpenVocabCOCOEvaluator",
    "OpenVocabLVISEvaluator",
    "OpenVocabPanopticEvaluator",
    "OpenVocabSemSegEvaluator",
    "ReferringEvaluator",
    "SeginWEvaluator",
    "VocabularyMapper",
    "annotation_mask",
    "build_evaluator",
    "f_measure_curve",
    "summarize_seginw",
    "summarize_seginw_suites",
]
