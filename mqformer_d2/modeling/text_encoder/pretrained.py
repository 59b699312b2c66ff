"""Loading a CLIP text tower from a local open_clip checkpoint (TEXT_ENCODER.PRETRAINED).

open_clip's released weights (`open_clip_pytorch_model.bin`, `open_clip_model.safetensors`, or a
`torch.save(model.state_dict())` of any open_clip CLIP) hold the image tower too; only the text
tower's tensors are taken (`token_embedding`, `positional_embedding`, `transformer.*`, `ln_final`,
`text_projection`, and `logit_scale` when present). The file is read like every weights file
(`checkpoint.read_weights_file`: nothing is unpickled beyond tensors). Every text-tower
tensor of the model must be in the file with its shape: anything else is an error naming the file,
so a ViT-L/14 file never half-loads into a ViT-B/32 tower.
"""
import logging

from torch import nn

from ...checkpoint.files import WeightsFileError, read_weights_file

logger = logging.getLogger(__name__)

# Text-tower tensors a checkpoint may lack: CLIP's image-text logit scale / bias (unused here).
_OPTIONAL = ("logit_scale", "logit_bias")


def load_text_tower(clip: nn.Module, path: str) -> int:
    """Copy the text-tower tensors of the open_clip checkpoint `path` into `clip` (an open_clip
    CLIP whose `visual` was removed); returns how many were loaded."""
    state = {name.removeprefix("module."): value for name, value in read_weights_file(path)["model"].items()}
    expected = clip.state_dict()
    missing = [name for name in expected if name not in state and name not in _OPTIONAL]
    wrong = [f"{name} {tuple(state[name].shape)} (model {tuple(expected[name].shape)})"
             for name in expected if name in state and tuple(state[name].shape) != tuple(expected[name].shape)]
    if missing or wrong:
        raise WeightsFileError(
            f"TEXT_ENCODER.PRETRAINED {path} is not a checkpoint of this text tower "
            f"(MODEL.MQFORMER.TEXT_ENCODER.MODEL_NAME): {len(missing)} tensors missing, e.g. {missing[:3]}; "
            f"{len(wrong)} of other shapes, e.g. {wrong[:3]}"
        )
    text_state = {name: state[name] for name in expected if name in state}
    clip.load_state_dict(text_state, strict=False)
    logger.info("Text tower: %d tensors from %s (%d other tensors of the file, e.g. the image tower, unused)",
                len(text_state), path, len(state) - len(text_state))
    return len(text_state)
