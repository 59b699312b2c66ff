"""Reading a weights file into a checkpoint dict, without running code from it.

`read_weights_file(path)` is the one reader of MODEL.WEIGHTS (the trainer, both predictors and the
tools go through `MQFormerCheckpointer`, which calls it):
- `.pkl` (detectron2 model zoo, converted torchvision / Caffe2 ResNets): `safe_pickle`, which
  rebuilds only dicts, numbers, strings and numpy arrays;
- anything else (`.pth`, `.pt`, `.bin`, ...): `torch.load(weights_only=True)`, torch's own
  restricted unpickler (tensors and plain containers);
- `.safetensors`: `safetensors.torch.load_file` when safetensors is installed.
Errors name the file and say what it is instead (missing, empty, text, not a dict of tensors).
"""
import os
import pickle
from typing import Dict

import numpy as np
import torch

from ..safe_pickle import UnsafePickleError, load_pickle_safely

# A checkpoint's model state may sit under one of these keys (detectron2 / fvcore, timm and
# Microsoft Swin, open_clip, plain PyTorch scripts).
_STATE_KEYS = ("model", "state_dict", "model_state")


class WeightsFileError(ValueError):
    """A weights file that cannot be used; the message names the file."""


def read_weights_file(path: str) -> Dict:
    """The checkpoint of `path` as a dict holding the state dict under "model" (plus whatever
    else the file holds, e.g. "optimizer", "iteration", "__author__", "matching_heuristics")."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file {path} does not exist (MODEL.WEIGHTS or --weights)")
    if os.path.getsize(path) == 0:
        raise WeightsFileError(f"weights file {path} is empty (0 bytes)")
    if path.endswith(".pkl"):
        loaded = detectron2_pickle_layout(_read_pickle(path), path)
    elif path.endswith(".safetensors"):
        loaded = _read_safetensors(path)
    else:
        loaded = _read_torch(path)
    return as_checkpoint(loaded, path)


def as_checkpoint(loaded, path: str) -> Dict:
    """{"model": state dict, ...} from what a weights file held; the state dict is found under
    "model" / "state_dict" / "model_state" or is the file itself."""
    if not isinstance(loaded, dict):
        raise WeightsFileError(f"weights file {path} holds a {type(loaded).__name__}, not a dict of tensors")
    for key in _STATE_KEYS:
        if isinstance(loaded.get(key), dict):
            checkpoint = dict(loaded)
            checkpoint["model"] = checkpoint.pop(key)
            break
    else:
        checkpoint = {"model": loaded}
    state = checkpoint["model"]
    bad = [name for name, value in state.items() if not isinstance(value, (torch.Tensor, np.ndarray))]
    if not state or len(bad) == len(state):
        raise WeightsFileError(f"weights file {path} holds no tensors (keys: {sorted(map(str, state))[:8]})")
    for name in bad:  # e.g. a "num_batches_tracked" int or a stray string: not weights
        del state[name]
    return checkpoint


def detectron2_pickle_layout(data, path: str):
    """What detectron2's loader makes of a `.pkl`: model-zoo files as they are; Caffe2 / Detectron
    files' "blobs" (without optimizer momenta) under "model", matched by name heuristics."""
    if not isinstance(data, dict):
        raise WeightsFileError(f"weights file {path} holds a {type(data).__name__}, not a dict of arrays")
    if "model" in data and "__author__" in data:
        return data
    data = data.get("blobs", data)
    data = {k: v for k, v in data.items() if not str(k).endswith("_momentum")}
    return {"model": data, "__author__": "Caffe2", "matching_heuristics": True}


def _read_pickle(path: str):
    with open(path, "rb") as f:
        try:
            return load_pickle_safely(f, encoding="latin1")
        except UnsafePickleError as e:
            raise WeightsFileError(f"weights file {path} was not loaded: {e}") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                IndexError, KeyError) as e:
            raise WeightsFileError(f"weights file {path} is not a readable pickle of weights ({e!r})") from None


def _read_torch(path: str):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if _is_zip_or_pickle(path):
            raise WeightsFileError(
                f"weights file {path} needs more than tensors and plain containers to load, and "
                f"this project never unpickles arbitrary objects from weights: {str(e).splitlines()[0]}"
            ) from None
        raise WeightsFileError(f"weights file {path} is not a PyTorch checkpoint (text or another format?)") from None
    except Exception as e:  # torch.load raises KeyError, RuntimeError, EOFError, ... on other files
        if not _is_zip_or_pickle(path):
            raise WeightsFileError(f"weights file {path} is not a PyTorch checkpoint (text or another format?)") from e
        raise WeightsFileError(f"weights file {path} is not a readable PyTorch checkpoint ({e!r})") from e


def _is_zip_or_pickle(path: str) -> bool:
    """Whether the file starts like a torch zip archive or a binary pickle (protocol >= 2)."""
    with open(path, "rb") as f:
        head = f.read(2)
    return head == b"PK" or head[:1] == b"\x80"


def _read_safetensors(path: str):
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise WeightsFileError(f"weights file {path}: reading .safetensors needs the safetensors package") from None
    try:
        return load_file(path)
    except Exception as e:  # safetensors raises its own error types
        raise WeightsFileError(f"weights file {path} is not a readable safetensors file ({e!r})") from None
