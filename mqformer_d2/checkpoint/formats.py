"""Recognising what a weights file is, and renaming its tensors into MQ-Former's names.

| format                      | recognised by                                  | conversion            |
|-----------------------------|------------------------------------------------|-----------------------|
| MQ-Former                   | most names are the model's                     | none                  |
| Mask DINO                   | `sem_seg_head.pixel_decoder.*` + `.predictor.*` | maskdino.py           |
| Swin (Microsoft / timm)     | `patch_embed.proj.weight`, `layers.0.blocks.*` | swin.py               |
| detectron2 backbone         | `stem.*`, `res2.*` .. (R-50.pkl, bare ResNet)  | prefix `backbone.`    |
| detectron2 Caffe2 `.pkl`    | detectron2's loader says so                    | detectron2's name matching |
Anything else is loaded by name as it is (and usually fails the backbone check of the loader).
"""
import re
from typing import Dict, Tuple

from detectron2.checkpoint.c2_model_loading import align_and_update_state_dicts
from torch import Tensor, nn

from .conversion import Conversion
from .maskdino import convert_maskdino, is_maskdino_state_dict
from .swin import convert_swin, is_swin_state_dict, swin_layout

MQFORMER = "MQ-Former"
_DETECTRON2_BACKBONE = re.compile(r"^(stem|res\d)\.")
# At least this fraction of a file's names must be the model's for it to count as an MQ-Former checkpoint.
_MQFORMER_NAME_FRACTION = 0.5


def detect_format(checkpoint: Dict, model: nn.Module) -> str:
    """One of the formats in the module docstring (with the Swin layout), or "unknown"."""
    state = checkpoint["model"]
    model_keys = model.state_dict().keys()
    if sum(name in model_keys for name in state) >= _MQFORMER_NAME_FRACTION * len(state):
        return MQFORMER
    if is_maskdino_state_dict(state):
        return "Mask DINO"
    if is_swin_state_dict(state):
        return f"Swin ({swin_layout(state)} layout)"
    if checkpoint.get("__author__") == "Caffe2":
        return "detectron2 Caffe2 .pkl"
    if all(_DETECTRON2_BACKBONE.match(name) for name in state):
        return "detectron2 backbone"
    return "unknown"


def convert_checkpoint(checkpoint: Dict, model: nn.Module) -> Tuple[str, Conversion]:
    """(format, the file's tensors under the model's names and what was skipped)."""
    file_format = detect_format(checkpoint, model)
    state: Dict[str, Tensor] = checkpoint["model"]
    if file_format == "Mask DINO":
        return file_format, convert_maskdino(state, model)
    if file_format.startswith("Swin"):
        return file_format, _convert_bare_swin(state, model)
    if file_format == "detectron2 Caffe2 .pkl":
        return file_format, _convert_by_detectron2_heuristics(state, model)
    prefix = "backbone." if file_format == "detectron2 backbone" else ""
    conversion = Conversion()
    for name, tensor in state.items():
        conversion.add(prefix + name, name, tensor)
    return file_format, conversion


def _convert_bare_swin(state: Dict[str, Tensor], model: nn.Module) -> Conversion:
    swin = getattr(getattr(model, "backbone", None), "swin", None)
    if swin is None:
        conversion = Conversion()
        for name in state:
            conversion.skip("Swin tensors, but the model's backbone is not a Swin (MODEL.BACKBONE.NAME)", name)
        return conversion
    return convert_swin(state, swin)


def _convert_by_detectron2_heuristics(state: Dict[str, Tensor], model: nn.Module) -> Conversion:
    """Caffe2 / Detectron1 names ("res2_0_branch2a_w"): detectron2's own name matching."""
    aligned = align_and_update_state_dicts(model.state_dict(), dict(state), c2_conversion=True)
    conversion = Conversion()
    for name, tensor in aligned.items():
        conversion.add(name, f"(Caffe2 name of {name})", tensor)
    return conversion
