"""Mask DINO's pixel decoder: a deformable encoder over strides 8..64 and a stride-4 mask map."""
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from torch import Tensor, nn

from mqformer_d2.layers import feature_map_position_embedding, group_norm, shapes_tensor

from .build import PIXEL_DECODER_REGISTRY
from .deformable_encoder import DeformableEncoder


@dataclass
class PixelDecoderOutput:
    """What the pixel decoder gives the query decoder (S = sum over levels of H_l * W_l).

    memory: (B, S, C) encoder tokens of all levels, finest (stride 8) first.
    spatial_shapes: (L, 2) int64 (H_l, W_l). level_start_index: (L,) int64 offset of each level.
    level_shapes: the same (H_l, W_l) as L pairs of sizes, which the model's own layers read (they
    stay symbolic under torch.export, where a tensor's values cannot become sizes).
    padding_mask: (B, S) bool, True at padded tokens.
    valid_ratios: (B, L, 2) (w, h) unpadded fraction of each level.
    mask_features: (B, C, H/4, W/4) per-pixel embeddings that query embeddings dot with.
    mask_valid_ratio: (B, 2) (w, h) unpadded fraction of the input (and of the mask features).
    """

    memory: Tensor
    spatial_shapes: Tensor
    level_start_index: Tensor
    level_shapes: List[Tuple[int, int]]
    padding_mask: Tensor
    valid_ratios: Tensor
    mask_features: Tensor
    mask_valid_ratio: Tensor


def _valid_ratios(padding_mask: Tensor) -> Tensor:
    """(B, H, W) bool padding -> (B, 2) (w, h) fraction not padded (images are top-left aligned)."""
    height, width = padding_mask.shape[-2:]
    valid_h = (~padding_mask[:, :, 0]).sum(1).float() / height
    valid_w = (~padding_mask[:, 0, :]).sum(1).float() / width
    return torch.stack([valid_w, valid_h], -1)


@PIXEL_DECODER_REGISTRY.register()
class MSDeformAttnPixelDecoder(nn.Module):
    """Backbone features -> multi-scale deformable encoder memory + stride-4 mask features.

    Levels: the `in_features` (e.g. res3..res5, strides 8..32) projected to `hidden_dim`, plus
    `num_extra_levels` stride-2 convolutions on the coarsest one (stride 64). The mask features fuse
    `mask_in_feature` (res2) with the upsampled stride-8 encoder output (FPN-style).
    """

    @configurable
    def __init__(self, *, input_shape: Dict[str, ShapeSpec], in_features: Sequence[str],
                 mask_in_feature: str, hidden_dim: int, num_extra_levels: int, num_layers: int,
                 num_heads: int, num_points: int, dim_feedforward: int, dropout: float):
        super().__init__()
        missing = [f for f in list(in_features) + [mask_in_feature] if f not in input_shape]
        if missing:
            raise ValueError(
                f"MODEL.MQFORMER.PIXEL_DECODER: features {missing} are not produced by the backbone "
                f"(it gives {sorted(input_shape)})"
            )
        self.in_features = sorted(in_features, key=lambda f: input_shape[f].stride)
        self.mask_in_feature = mask_in_feature
        self.num_levels = len(self.in_features) + num_extra_levels
        self.input_projections = self._build_input_projections(input_shape, hidden_dim, num_extra_levels)
        self.level_embed = nn.Parameter(torch.empty(self.num_levels, hidden_dim).normal_())
        self.encoder = DeformableEncoder(
            num_layers=num_layers, dim=hidden_dim, num_levels=self.num_levels, num_heads=num_heads,
            num_points=num_points, dim_feedforward=dim_feedforward, dropout=dropout,
        )
        self.mask_lateral = nn.Sequential(
            nn.Conv2d(input_shape[mask_in_feature].channels, hidden_dim, 1, bias=False), group_norm(hidden_dim)
        )
        self.mask_output = nn.Sequential(
            nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1, bias=False), group_norm(hidden_dim), nn.ReLU(inplace=True)
        )
        self.mask_features = nn.Conv2d(hidden_dim, hidden_dim, 1)
        self.hidden_dim = hidden_dim

    def _build_input_projections(self, input_shape, hidden_dim, num_extra_levels) -> nn.ModuleList:
        projections = [
            nn.Sequential(nn.Conv2d(input_shape[f].channels, hidden_dim, 1), group_norm(hidden_dim))
            for f in self.in_features
        ]
        in_channels = input_shape[self.in_features[-1]].channels
        for _ in range(num_extra_levels):
            projections.append(nn.Sequential(
                nn.Conv2d(in_channels, hidden_dim, 3, stride=2, padding=1), group_norm(hidden_dim)
            ))
            in_channels = hidden_dim
        for projection in projections:
            nn.init.xavier_uniform_(projection[0].weight, gain=1)
            nn.init.constant_(projection[0].bias, 0)
        return nn.ModuleList(projections)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]) -> Dict:
        """Reads MODEL.MQFORMER.PIXEL_DECODER and MODEL.MQFORMER.HIDDEN_DIM."""
        pd = cfg.MODEL.MQFORMER.PIXEL_DECODER
        return {
            "input_shape": input_shape,
            "in_features": list(pd.IN_FEATURES),
            "mask_in_feature": pd.MASK_IN_FEATURE,
            "hidden_dim": cfg.MODEL.MQFORMER.HIDDEN_DIM,
            "num_extra_levels": pd.NUM_EXTRA_LEVELS,
            "num_layers": pd.NUM_LAYERS,
            "num_heads": pd.NUM_HEADS,
            "num_points": pd.NUM_POINTS,
            "dim_feedforward": pd.DIM_FEEDFORWARD,
            "dropout": pd.DROPOUT,
        }

    def _level_maps(self, features: Dict[str, Tensor]) -> List[Tensor]:
        """Projected maps of every level, finest first: L tensors (B, C, H_l, W_l)."""
        maps = [proj(features[f]) for proj, f in zip(self.input_projections, self.in_features)]
        source = features[self.in_features[-1]]
        for proj in self.input_projections[len(self.in_features):]:
            source = proj(source)
            maps.append(source)
        return maps

    def forward(self, features: Dict[str, Tensor], padding_mask: Tensor) -> PixelDecoderOutput:
        """
        Args:
            features: backbone outputs {name: (B, C_name, H / s, W / s)}.
            padding_mask: (B, H, W) bool at the padded input size, True where padded.
        """
        maps = self._level_maps(features)
        tokens, pos, masks, shapes = [], [], [], []
        for level, level_map in enumerate(maps):
            height, width = level_map.shape[-2:]
            mask = F.interpolate(padding_mask[None].float(), size=(height, width))[0].bool()
            level_pos = feature_map_position_embedding(mask, self.hidden_dim // 2).to(level_map.dtype)
            tokens.append(level_map.flatten(2).transpose(1, 2))
            pos.append(level_pos.flatten(2).transpose(1, 2) + self.level_embed[level])
            masks.append(mask)
            shapes.append((height, width))
        spatial_shapes = shapes_tensor(shapes, padding_mask.device)
        sizes = spatial_shapes.prod(1)
        level_start_index = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
        valid_ratios = torch.stack([_valid_ratios(m) for m in masks], 1)
        flat_mask = torch.cat([m.flatten(1) for m in masks], 1)
        memory = self.encoder(
            torch.cat(tokens, 1), torch.cat(pos, 1), shapes, level_start_index, valid_ratios, flat_mask
        )
        return PixelDecoderOutput(
            memory=memory, spatial_shapes=spatial_shapes, level_start_index=level_start_index, level_shapes=shapes,
            padding_mask=flat_mask, valid_ratios=valid_ratios,
            mask_features=self._mask_features(features, memory, shapes[0]),
            mask_valid_ratio=_valid_ratios(padding_mask),
        )

    def _mask_features(self, features: Dict[str, Tensor], memory: Tensor, finest_shape) -> Tensor:
        """Fuse res2 with the upsampled stride-8 encoder output -> (B, C, H/4, W/4)."""
        height, width = finest_shape
        finest = memory[:, : height * width].transpose(1, 2).reshape(memory.shape[0], -1, height, width)
        lateral = self.mask_lateral(features[self.mask_in_feature])
        fused = lateral + F.interpolate(finest, size=lateral.shape[-2:], mode="bilinear", align_corners=False)
        return self.mask_features(self.mask_output(fused))
