"""Diagnostics of trained MQ-Former runs: where are things found, and where is naming lost?

features.py   per-target read-outs of every stage (RoIAlign grids, queries, ground-truth masks)
readouts.py   the read-out operators (RoIAlign grid, mask average, mask crop)
capture.py    forward hooks on the model's submodules
matching.py   the final decoder layer's Hungarian matching (also: which query type wins each target)
shares.py     found / named shares of the final layer's matching
probes.py     linear (softmax) probes
text_side.py  class-name embedding similarity, logit scale and bias
models.py     the trained model and its random-initialisation baseline
report.py     markdown table and JSON in a new folder
thing_naming.py  the whole diagnosis (tools/thing_error_analysis.py)
"""
from .features import TargetFeatures, collect_target_features
from .matching import final_layer_matching, match_queries
from .models import build_random_init_model, load_trained_model, random_init_config, run_config
from .probes import LinearProbe, accuracy, fit_linear_probe, probe_accuracy
from .readouts import gt_mask_crop, mask_average, roi_grid
from .report import markdown_report, write_report
from .shares import SHARES, mask_ious, share_percentages
from .text_side import classifier_calibration, text_cosine_matrix, text_side_report
from .thing_naming import DiagnosisSettings, diagnose_run

__all__ = [
    "SHARES", "DiagnosisSettings", "LinearProbe", "TargetFeatures", "accuracy", "build_random_init_model",
    "classifier_calibration", "collect_target_features", "diagnose_run", "final_layer_matching", "fit_linear_probe",
    "gt_mask_crop", "load_trained_model", "markdown_report", "mask_average", "mask_ious", "match_queries",
    "probe_accuracy", "random_init_config", "roi_grid", "run_config", "share_percentages", "text_cosine_matrix",
    "text_side_report", "write_report",
]
