"""Swin Transformer weights (Microsoft's original layout or timm's) -> `TimmSwinBackbone` names.

The two layouts differ where the patch merging sits: Microsoft's checkpoints (and Mask DINO's,
X-Decoder's backbones) keep it at the end of a stage (`layers.0.downsample`, none in the last
stage), timm at the start of the next one (`layers.1.downsample`). timm's own
`checkpoint_filter_fn` tells them apart by `layers.0.downsample.reduction.weight`, renames, drops
the buffers timm recomputes (`relative_position_index`, `attn_mask`) and resizes relative-position
tables and patch embeddings to the model's window and patch size.

Output norms: detection checkpoints carry one LayerNorm per returned stage (`norm0`..`norm3`,
Microsoft's detection Swin and Mask DINO), which are `output_norms.res2`..`res5` here. ImageNet
classification checkpoints have only the final `norm` (on the last stage's output), which goes to
`output_norms.res5`; their `head` (the classifier) has no counterpart.
"""
import re
from typing import Dict

from torch import Tensor, nn

from .conversion import Conversion

_PREFIX = "backbone."
_STAGE_NAMES = ("res2", "res3", "res4", "res5")
_STAGE_NORM = re.compile(r"^norm(\d)\.(weight|bias)$")
_RECOMPUTED_BUFFERS = ("relative_position_index", "attn_mask")


def is_swin_state_dict(state: Dict[str, Tensor]) -> bool:
    """Whether `state` (names without a "backbone." prefix) is a Swin Transformer's."""
    return "patch_embed.proj.weight" in state and any(k.startswith("layers.0.blocks.0.attn.") for k in state)


def swin_layout(state: Dict[str, Tensor]) -> str:
    """"Microsoft" (patch merging at the end of a stage) or "timm" (at the start of the next)."""
    return "Microsoft" if "layers.0.downsample.reduction.weight" in state else "timm"


def convert_swin(state: Dict[str, Tensor], swin: nn.Module) -> Conversion:
    """Names of a Swin state dict (without "backbone.") -> `backbone.swin.*` / `backbone.output_norms.*`.

    Args:
        state: the file's Swin tensors, in either layout.
        swin: the timm model inside the backbone (`TimmSwinBackbone.swin`), used by timm to resize
            relative-position tables and patch embeddings.
    """
    from timm.models.swin_transformer import checkpoint_filter_fn  # timm is there: `swin` is a timm model

    conversion = Conversion()
    body = {}
    for name, tensor in state.items():
        stage_norm = _STAGE_NORM.match(name)
        if stage_norm and int(stage_norm.group(1)) < len(_STAGE_NAMES):
            stage = _STAGE_NAMES[int(stage_norm.group(1))]
            conversion.add(f"{_PREFIX}output_norms.{stage}.{stage_norm.group(2)}", name, tensor)
        elif name in ("norm.weight", "norm.bias"):
            _add_final_norm(conversion, state, name, tensor)
        elif name.startswith("head."):
            conversion.skip("ImageNet classifier head (no counterpart)", name)
        elif any(buffer in name for buffer in _RECOMPUTED_BUFFERS):
            conversion.skip("buffers timm recomputes from the window size", name)
        elif name.endswith("relative_position_bias_table") and not _has_module(swin, name[: -len(".relative_position_bias_table")]):
            conversion.skip("blocks the model does not have (a deeper Swin?)", name)
        else:
            body[name] = tensor
    renamed = checkpoint_filter_fn(body, swin)
    if len(renamed) != len(body):  # it only drops the buffers, which are gone already
        raise ValueError(f"timm's Swin checkpoint filter dropped {len(body) - len(renamed)} unexpected tensors")
    # checkpoint_filter_fn keeps the order of its input: pair the names up again.
    for (file_name, _), (timm_name, tensor) in zip(body.items(), renamed.items()):
        conversion.add(f"{_PREFIX}swin.{timm_name}", file_name, tensor)
    return conversion


def _add_final_norm(conversion: Conversion, state: Dict[str, Tensor], name: str, tensor: Tensor) -> None:
    """The classifier's final norm normalises the last stage: res5's output norm, unless the file
    also has a detection norm for that stage."""
    if f"norm{len(_STAGE_NAMES) - 1}.weight" in state:
        conversion.skip("classification norm (the file's detection norm3 fills output_norms.res5)", name)
    else:
        conversion.add(f"{_PREFIX}output_norms.res5.{name.split('.')[-1]}", name, tensor)


def _has_module(model: nn.Module, path: str) -> bool:
    try:
        model.get_submodule(path)
    except AttributeError:
        return False
    return True
