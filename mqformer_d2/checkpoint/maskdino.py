"""Mask DINO checkpoints (IDEA-Research/MaskDINO, `{"model": state_dict}`) -> MQ-Former names.

An explicit map, reviewed against both architectures (MQ-Former follows Mask DINO, so most parts
are the same modules under other names):

| Mask DINO (`sem_seg_head.` omitted)              | MQ-Former                                      |
|--------------------------------------------------|------------------------------------------------|
| backbone.* (detectron2 ResNet)                   | backbone.* (same names)                        |
| backbone.* (Swin, Microsoft layout)              | backbone.swin.*, backbone.output_norms.* (swin.py) |
| pixel_decoder.input_proj.{i}                     | pixel_decoder.input_projections.{level of i}   |
| pixel_decoder.transformer.level_embed            | pixel_decoder.level_embed (rows by level)      |
| pixel_decoder.transformer.encoder.layers.{l}.    | pixel_decoder.encoder.layers.{l}.              |
|   self_attn.*, norm1                             |   self_attn.* (levels reordered), norm1        |
|   linear1, linear2, norm2                        |   ffn.net.0, ffn.net.3, ffn.norm               |
| pixel_decoder.adapter_1 (conv, norm)             | pixel_decoder.mask_lateral.{0, 1}              |
| pixel_decoder.layer_1 (conv, norm)               | pixel_decoder.mask_output.{0, 1}               |
| pixel_decoder.mask_features                      | pixel_decoder.mask_features                    |
| predictor.decoder.layers.{l}.                    | decoder.layers.{l}.                            |
|   self_attn, norm2                               |   self_attention.attention, self_attention.norm |
|   cross_attn, norm1                              |   cross_attention (levels reordered), cross_norm |
|   linear1, linear2, norm3                        |   ffn.net.0, ffn.net.3, ffn.norm               |
| predictor.decoder.ref_point_head                 | decoder.anchor_to_position                     |
| predictor.enc_output, enc_output_norm            | decoder.selector.token_projection, token_norm  |
| predictor.query_feat, query_embed (if any)       | decoder.learnable_content, learnable_anchors   |
| predictor.decoder_norm                           | decoder.heads.norm                             |
| predictor.mask_embed                             | decoder.heads.mask_embed                       |
| predictor._bbox_embed (the shared box head)      | decoder.heads.box_delta                        |

Not mapped, and reported as such: `class_embed` (closed-set classifier; MQ-Former scores queries
against text embeddings), `label_enc` (closed-set denoising label embeddings; MQ-Former's denoising
queries use text embeddings), `bbox_embed.*` / `decoder.bbox_embed.*` (per-layer references to the
shared `_bbox_embed`), `decoder.norm` (Mask DINO normalises each layer's output twice; MQ-Former
once, in the heads, which take `decoder_norm`), `criterion.*` (loss buffers). MQ-Former's
dual-query cross-attention, text classifier projection and text encoder have no counterpart.

Encoder levels: Mask DINO orders its levels finest-first (FEATURE_ORDER "low2high") or
coarsest-first ("high2low"), which its `input_proj` list shows (a 1x1 projection per backbone
level, by channel count, then 3x3 stride-2 ones for the extra levels). When the file's levels are
the model's levels, every level-indexed tensor (input projections, level embeddings, the sampling
offsets and attention weights of every deformable attention) is reordered into the model's
finest-first order; when they differ, those tensors are skipped and the report says which config
keys to change.
"""
import re
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
from torch import Tensor

from .conversion import Conversion
from .swin import convert_swin, is_swin_state_dict

PIXEL_DECODER = "sem_seg_head.pixel_decoder."
PREDICTOR = "sem_seg_head.predictor."
_ENCODER_LAYER = re.compile(r"^sem_seg_head\.pixel_decoder\.transformer\.encoder\.layers\.(\d+)\.(.+)$")
_DECODER_LAYER = re.compile(r"^sem_seg_head\.predictor\.decoder\.layers\.(\d+)\.(.+)$")
_INPUT_PROJ = re.compile(r"^sem_seg_head\.pixel_decoder\.input_proj\.(\d+)\.([01])\.(weight|bias)$")
_LEVEL_INDEXED = ("sampling_offsets", "attention_weights")

_DEFORMABLE_ATTENTION = [f"{p}.{k}" for p in ("sampling_offsets", "attention_weights", "value_proj", "output_proj")
                         for k in ("weight", "bias")]


def _parameters(mapping: Dict[str, str]) -> Dict[str, str]:
    """{"a": "b"} -> {"a.weight": "b.weight", "a.bias": "b.bias"}."""
    return {f"{src}.{k}": f"{dst}.{k}" for src, dst in mapping.items() for k in ("weight", "bias")}


# Per encoder layer: Mask DINO suffix -> MQ-Former suffix.
ENCODER_LAYER_MAP = {
    **{f"self_attn.{k}": f"self_attn.{k}" for k in _DEFORMABLE_ATTENTION},
    **_parameters({"norm1": "norm1", "linear1": "ffn.net.0", "linear2": "ffn.net.3", "norm2": "ffn.norm"}),
}
# Per decoder layer: Mask DINO suffix -> MQ-Former suffix.
DECODER_LAYER_MAP = {
    "self_attn.in_proj_weight": "self_attention.attention.in_proj_weight",
    "self_attn.in_proj_bias": "self_attention.attention.in_proj_bias",
    **_parameters({"self_attn.out_proj": "self_attention.attention.out_proj", "norm2": "self_attention.norm",
                   "norm1": "cross_norm", "linear1": "ffn.net.0", "linear2": "ffn.net.3", "norm3": "ffn.norm"}),
    **{f"cross_attn.{k}": f"cross_attention.{k}" for k in _DEFORMABLE_ATTENTION},
}
# Everything else that has a counterpart: Mask DINO name -> MQ-Former name.
FIXED_MAP = {
    f"{PIXEL_DECODER}mask_features.weight": "pixel_decoder.mask_features.weight",
    f"{PIXEL_DECODER}mask_features.bias": "pixel_decoder.mask_features.bias",
    f"{PIXEL_DECODER}adapter_1.weight": "pixel_decoder.mask_lateral.0.weight",
    f"{PIXEL_DECODER}layer_1.weight": "pixel_decoder.mask_output.0.weight",
    **_parameters({f"{PIXEL_DECODER}adapter_1.norm": "pixel_decoder.mask_lateral.1",
                   f"{PIXEL_DECODER}layer_1.norm": "pixel_decoder.mask_output.1",
                   f"{PREDICTOR}enc_output": "decoder.selector.token_projection",
                   f"{PREDICTOR}enc_output_norm": "decoder.selector.token_norm",
                   f"{PREDICTOR}decoder_norm": "decoder.heads.norm",
                   **{f"{PREDICTOR}decoder.ref_point_head.layers.{i}": f"decoder.anchor_to_position.layers.{i}"
                      for i in range(2)},
                   **{f"{PREDICTOR}mask_embed.layers.{i}": f"decoder.heads.mask_embed.layers.{i}" for i in range(3)},
                   **{f"{PREDICTOR}_bbox_embed.layers.{i}": f"decoder.heads.box_delta.layers.{i}" for i in range(3)}}),
    f"{PREDICTOR}query_feat.weight": "decoder.learnable_content.weight",
    f"{PREDICTOR}query_embed.weight": "decoder.learnable_anchors.weight",
}
# Mask DINO names with no counterpart: regular expression -> reason given in the report.
NO_COUNTERPART = {
    r"^sem_seg_head\.predictor\.class_embed\.": "closed-set class head (MQ-Former scores queries against text embeddings)",
    r"^sem_seg_head\.predictor\.label_enc\.": "closed-set denoising label embeddings (MQ-Former uses text embeddings)",
    r"^sem_seg_head\.predictor\.(decoder\.)?bbox_embed\.": "per-layer references to the shared box head _bbox_embed (loaded once)",
    r"^sem_seg_head\.predictor\.decoder\.norm\.": "second norm of every decoder output (MQ-Former normalises once, with decoder_norm)",
    r"^criterion\.": "loss buffers, not weights",
}


def is_maskdino_state_dict(state: Dict[str, Tensor]) -> bool:
    """Whether `state` is a Mask DINO model's (its heads live under `sem_seg_head.predictor`)."""
    return any(name.startswith(PREDICTOR) for name in state) and any(name.startswith(PIXEL_DECODER) for name in state)


@dataclass
class ModelLevels:
    """The model's encoder levels, finest first, e.g. ["res3", "res4", "res5", "extra1"], the
    channels of each backbone feature, and the head counts of the encoder's and the decoder's
    deformable attention (their level-indexed tensors are grouped by head)."""

    names: List[str]
    channels: Dict[str, int]
    encoder_heads: int
    decoder_heads: int

    @classmethod
    def of(cls, model) -> "ModelLevels":
        pixel_decoder = model.pixel_decoder
        names = list(pixel_decoder.in_features)
        names += [f"extra{i + 1}" for i in range(pixel_decoder.num_levels - len(names))]
        encoder_layers, decoder_layers = pixel_decoder.encoder.layers, model.decoder.layers
        return cls(names=names, channels={n: s.channels for n, s in model.backbone.output_shape().items()},
                   encoder_heads=encoder_layers[0].self_attn.n_heads if len(encoder_layers) else 0,
                   decoder_heads=decoder_layers[0].cross_attention.n_heads if len(decoder_layers) else 0)


def file_levels(state: Dict[str, Tensor], levels: ModelLevels) -> Optional[List[str]]:
    """The file's encoder levels in its own order, named like the model's (a backbone level by its
    channel count), or None when a projection's channels match no backbone feature."""
    by_channels = {c: n for n, c in levels.channels.items()}
    projections = sorted({int(m.group(1)) for m in map(_INPUT_PROJ.match, state) if m})
    backbone, extras = [], 0
    for index in projections:
        weight = state[f"{PIXEL_DECODER}input_proj.{index}.0.weight"]
        if weight.shape[-1] == 1:
            if int(weight.shape[1]) not in by_channels:
                return None
            backbone.append(by_channels[int(weight.shape[1])])
        else:
            extras += 1
    extra_names = [f"extra{i + 1}" for i in range(extras)]
    channels = [levels.channels[n] for n in backbone]
    if channels == sorted(channels):  # "low2high": finest first, extra levels last
        return backbone + extra_names
    return extra_names[::-1] + backbone  # "high2low": coarsest first


def convert_maskdino(state: Dict[str, Tensor], model) -> Conversion:
    """The tensors of a Mask DINO state dict under MQ-Former names (see the module docstring)."""
    levels = ModelLevels.of(model)
    source_levels = file_levels(state, levels)
    order = None
    if source_levels is not None and sorted(source_levels) == sorted(levels.names):
        order = [source_levels.index(name) for name in levels.names]
    conversion = Conversion()
    backbone = {n[len("backbone."):]: t for n, t in state.items() if n.startswith("backbone.")}
    conversion.update(_convert_backbone(backbone, model))
    level_reason = (f"level-indexed tensors of encoder levels {source_levels} (the model's are {levels.names}: "
                    "set MODEL.MQFORMER.PIXEL_DECODER.IN_FEATURES / NUM_EXTRA_LEVELS to match)")
    for name, tensor in state.items():
        if name.startswith("backbone."):
            continue
        target = _target_name(name, source_levels, levels)
        if target is None:
            conversion.skip(_no_counterpart_reason(name), name)
        elif name.split(".")[-2] in _LEVEL_INDEXED or "level_embed" in name:
            if order is None:
                conversion.skip(level_reason, name)
            else:
                heads = levels.decoder_heads if name.startswith(PREDICTOR) else levels.encoder_heads
                conversion.add(target, name, reorder_levels(tensor, order, heads, name))
        else:
            conversion.add(target, name, tensor)
    return conversion


def _convert_backbone(backbone: Dict[str, Tensor], model) -> Conversion:
    """A Swin backbone through `convert_swin`; a detectron2 ResNet keeps its names."""
    conversion = Conversion()
    if is_swin_state_dict(backbone) and hasattr(model.backbone, "swin"):
        swin = convert_swin(backbone, model.backbone.swin)
        for name, tensor in swin.tensors.items():  # name the file's tensors as the file does
            conversion.add(name, f"backbone.{swin.origin[name]}", tensor)
        for reason, names in swin.skipped.items():
            conversion.skipped[reason].extend(f"backbone.{n}" for n in names)
        return conversion
    for name, tensor in backbone.items():
        conversion.add(f"backbone.{name}", f"backbone.{name}", tensor)
    return conversion


def _target_name(name: str, source_levels: Optional[List[str]], levels: ModelLevels) -> Optional[str]:
    """The MQ-Former name of a Mask DINO (non-backbone) name, None without a counterpart."""
    if name in FIXED_MAP:
        return FIXED_MAP[name]
    if name == f"{PIXEL_DECODER}transformer.level_embed":
        return "pixel_decoder.level_embed"
    match = _ENCODER_LAYER.match(name)
    if match and match.group(2) in ENCODER_LAYER_MAP:
        return f"pixel_decoder.encoder.layers.{match.group(1)}.{ENCODER_LAYER_MAP[match.group(2)]}"
    match = _DECODER_LAYER.match(name)
    if match and match.group(2) in DECODER_LAYER_MAP:
        return f"decoder.layers.{match.group(1)}.{DECODER_LAYER_MAP[match.group(2)]}"
    match = _INPUT_PROJ.match(name)
    if match and source_levels is not None:
        level = source_levels[int(match.group(1))] if int(match.group(1)) < len(source_levels) else None
        if level in levels.names:  # the model's projections are in its level order
            return f"pixel_decoder.input_projections.{levels.names.index(level)}.{match.group(2)}.{match.group(3)}"
    return None


def _no_counterpart_reason(name: str) -> str:
    for pattern, reason in NO_COUNTERPART.items():
        if re.search(pattern, name):
            return reason
    return "no counterpart in MQ-Former"


def reorder_levels(tensor: Tensor, order: List[int], num_heads: int, name: str) -> Tensor:
    """Put the level axis of a level-indexed tensor into the model's level order.

    `order[i]` is the file's index of the model's level i. level_embed is (L, C); sampling
    offsets are (M * L * P * 2[, C]) and attention weights (M * L * P[, C]), heads outermost.
    """
    if order == list(range(len(order))):
        return tensor
    index = torch.as_tensor(order)
    if "level_embed" in name:
        return tensor[index]
    num_levels = len(order)
    per_head = tensor.shape[0] // num_heads if num_heads else 0
    if not per_head or per_head * num_heads != tensor.shape[0] or per_head % num_levels:
        return tensor  # not the model's layout: its shape differs, and the load reports it
    grouped = tensor.reshape(num_heads, num_levels, per_head // num_levels, *tensor.shape[1:])
    return grouped[:, index].reshape(tensor.shape)
