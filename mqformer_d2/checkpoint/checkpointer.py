"""`MQFormerCheckpointer`: the one loader of weights files into MQ-Former.

It is detectron2's `DetectionCheckpointer` (saving, `resume_or_load`, checkpointables) with:
- reading through `files.read_weights_file`: `.pkl` without unpickling code, every other file
  with `torch.load(weights_only=True)`, clear errors naming the file;
- an explicit conversion of known formats into MQ-Former's names (`formats`: Mask DINO
  checkpoints, Swin in Microsoft's or timm's layout, detectron2 ResNets);
- a `LoadReport` per load (`self.last_report`, logged): per component, tensors loaded / left as
  built, and the file's tensors that were skipped, grouped by reason;
- errors instead of a silently random model: a file that fills less than half of the backbone,
  or an MQ-Former checkpoint whose tensors do not fit the model (another config).
"""
import logging
import os
from typing import Dict, List, Optional

import torch
from detectron2.checkpoint import DetectionCheckpointer

from .files import read_weights_file
from .formats import MQFORMER, convert_checkpoint
from .report import LoadReport, group_names

logger = logging.getLogger(__name__)

# Below this fraction of the backbone's tensors loaded, a weights file is an error.
MIN_BACKBONE_SHARE = 0.5
# Report reasons of the file's tensors that the model did not take.
NOT_IN_MODEL = "not in the model"
WRONG_SHAPE = "with another shape than the model's"


class WeightsMismatchError(ValueError):
    """A weights file that does not fit the model (the message names the file and the mismatches)."""


def check_weights_path(path: str, key: str = "MODEL.WEIGHTS") -> None:
    """Refuse, before anything is built, a URL (detectron2 would download it through iopath:
    a ValueError saying to download it first) and a missing file (a FileNotFoundError naming
    it and `key`, the setting that gave it). "" (no weights) passes."""
    if path and "://" in path:
        raise ValueError(
            f"{key} {path} is a URL: weights are read from local files only, nothing is "
            "downloaded. Download the file first (e.g. `wget -O weights/model.pth URL`; detectron2:// "
            f"stands for https://dl.fbaipublicfiles.com/detectron2/) and set {key} to its path")
    if path and not os.path.isfile(path.split("?")[0]):
        raise FileNotFoundError(f"weights file {path} does not exist ({key})")


class MQFormerCheckpointer(DetectionCheckpointer):
    """Use as `MQFormerCheckpointer(model).load(cfg.MODEL.WEIGHTS)` (arguments as detectron2's)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.last_report: Optional[LoadReport] = None
        self._path: str = ""

    def load(self, path, *args, **kwargs):
        """detectron2's `load` of a local file: a URL (which detectron2 would download through
        iopath) is a ValueError saying to download it first, and a missing file a
        FileNotFoundError naming it (`check_weights_path`)."""
        check_weights_path(path)
        return super().load(path, *args, **kwargs)

    def load_checkpoint(self, checkpoint: Dict, source: str) -> LoadReport:
        """Load a checkpoint dict already in memory (`{"model": state_dict}`, as
        `read_weights_file` returns it); `source` names it in the report and in errors."""
        self._path = source
        self._load_model(checkpoint)
        return self.last_report

    def _load_file(self, filename: str):
        self._path = filename
        return read_weights_file(filename)

    def _load_model(self, checkpoint):
        model = self.model.module if hasattr(self.model, "module") else self.model
        state = {name.removeprefix("module."): value for name, value in checkpoint["model"].items()}
        self._convert_ndarray_to_tensor(state)
        file_format, conversion = convert_checkpoint(dict(checkpoint, model=state), model)
        checkpoint["model"] = conversion.tensors
        checkpoint.pop("matching_heuristics", None)  # the conversion above did the matching
        incompatible = super()._load_model(checkpoint)
        wrong_shape = {name for name, *_ in incompatible.incorrect_shapes}
        skipped = dict(conversion.skipped)
        skipped[NOT_IN_MODEL] = [conversion.origin[n] for n in incompatible.unexpected_keys]
        skipped[WRONG_SHAPE] = [
            f"{conversion.origin[n]} {tuple(file_shape)} -> {n} {tuple(model_shape)}"
            for n, file_shape, model_shape in incompatible.incorrect_shapes
        ]
        model_keys = list(model.state_dict())
        known = set(model_keys)
        sources = {n: conversion.origin[n] for n in conversion.tensors if n not in wrong_shape and n in known}
        self.last_report = LoadReport.build(self._path, file_format, model_keys, sources, skipped)
        logger.info("%s", self.last_report)
        check_report(self.last_report, incompatible)
        warn_about_non_finite(self._path, {n: conversion.tensors[n] for n in sources})
        return incompatible

    def _log_incompatible_keys(self, incompatible) -> None:
        """The LoadReport (logged in `_load_model`) replaces detectron2's lists of names."""


def check_report(report: LoadReport, incompatible) -> None:
    """Raise WeightsMismatchError for a file that leaves most of the backbone as built, or an
    MQ-Former checkpoint with tensors of other shapes (a checkpoint of another config)."""
    loaded, total = report.counts("backbone")
    if total and loaded < MIN_BACKBONE_SHARE * total:
        raise WeightsMismatchError(
            f"weights file {report.path} ({report.file_format}) fills only {loaded} of the model's {total} "
            f"backbone tensors: it is not weights of this model's backbone (MODEL.BACKBONE / config?). "
            f"First model tensors not found: {group_names(report.initialised['backbone'], 4)}; "
            f"first file tensors not used: {_first_skipped(report)}"
        )
    if report.file_format == MQFORMER and incompatible.incorrect_shapes:
        raise WeightsMismatchError(
            f"weights file {report.path} is an MQ-Former checkpoint of another configuration: "
            f"{len(incompatible.incorrect_shapes)} tensors have other shapes than the model's, e.g. "
            f"{report.skipped[WRONG_SHAPE][:3]}; build the model "
            "with the config it was trained with"
        )


def warn_about_non_finite(path: str, loaded: Dict[str, torch.Tensor]) -> List[str]:
    """Log a warning naming the file and the first tensors holding NaN or infinite values (a
    checkpoint of a diverged run loads, and predicts nothing); return their names."""
    bad = [name for name, tensor in loaded.items()
           if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        logger.warning("weights file %s: %d of the %d loaded tensors hold NaN or infinite values (a diverged "
                       "training?), e.g. %s", path, len(bad), len(loaded), "; ".join(group_names(bad, 4)))
    return bad


def _first_skipped(report: LoadReport, limit: int = 4):
    names = [name for names in report.skipped.values() for name in names]
    return group_names(names, limit)
