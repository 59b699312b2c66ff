"""Multi-scale deformable attention (Deformable DETR, Zhu et al. 2021), with CUDA and PyTorch paths.

Every query attends to `P` sampled points around its reference point on each of `L` feature levels,
for each of `M` heads; the sampled values (bilinear, zero padding, align_corners=False) are summed
with attention weights predicted from the query.

Paths:
- `ms_deform_attn_pytorch`: the reference, built on `F.grid_sample`; runs anywhere.
- `ms_deform_attn_compiled`: the compiled `mqformer_d2._C` op (float64/32/16 and bfloat16): CUDA
  kernels, and CPU loops over the same per-element code (used to test that code on any machine).
`multi_scale_deformable_attention` picks between them; see its docstring for the rules.
"""
import logging
import math
from typing import Optional

import torch
import torch.nn.functional as F
from detectron2.utils.logger import log_first_n
from torch import nn
from torch.autograd.function import once_differentiable

from .token_grid import SpatialShapes, level_shapes, shapes_tensor

logger = logging.getLogger(__name__)

try:
    from mqformer_d2 import _C
except ImportError as import_error:  # pure-Python install: no CUDA toolkit when it was built
    _C = None
    _C_IMPORT_ERROR = import_error
else:
    _C_IMPORT_ERROR = None

# Set to True to use the PyTorch reference even for CUDA tensors (debugging, parity tests).
FORCE_PYTORCH_IMPLEMENTATION = False


def extension_available() -> bool:
    """Whether the compiled `mqformer_d2._C` extension was built and imports."""
    return _C is not None


def ms_deform_attn_pytorch(
    value: torch.Tensor,
    spatial_shapes: SpatialShapes,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
    im2col_step: int = 64,
) -> torch.Tensor:
    """Pure-PyTorch reference of multi-scale deformable attention.

    Args:
        value: (N, S, M, D) flattened features of all levels, S = sum(H_l * W_l).
        spatial_shapes: (H_l, W_l) of each level: (L, 2) int64 or L pairs (`SpatialShapes`).
        level_start_index: (L,) int64, offset of each level in S (unused here: implied by shapes).
        sampling_locations: (N, Lq, M, L, P, 2) normalised (x, y); (0, 0) is the top-left corner
            of the top-left pixel and (1, 1) the bottom-right corner of the bottom-right one.
        attention_weights: (N, Lq, M, L, P).
        im2col_step: unused; accepted so that both paths share one signature.

    Returns:
        (N, Lq, M * D).
    """
    del level_start_index, im2col_step
    n, _, heads, dim = value.shape
    _, num_queries, _, levels, points, _ = sampling_locations.shape
    shapes = level_shapes(spatial_shapes)
    sizes = [h * w for h, w in shapes]
    value_per_level = value.split(sizes, dim=1)
    # grid_sample wants grid coordinates in [-1, 1], in the dtype of the values (they can differ
    # under autocast, where value comes from a half-precision projection).
    grids = (2 * sampling_locations - 1).to(value.dtype)
    attention_weights = attention_weights.to(value.dtype)
    sampled = []
    for level, (h, w) in enumerate(shapes):
        # (N, H*W, M, D) -> (N*M, D, H, W)
        level_value = value_per_level[level].permute(0, 2, 3, 1).reshape(n * heads, dim, h, w)
        # (N, Lq, M, P, 2) -> (N*M, Lq, P, 2)
        level_grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        # -> (N*M, D, Lq, P)
        sampled.append(
            F.grid_sample(
                level_value, level_grid, mode="bilinear", padding_mode="zeros", align_corners=False
            )
        )
    # (N, Lq, M, L, P) -> (N*M, 1, Lq, L*P)
    weights = attention_weights.transpose(1, 2).reshape(n * heads, 1, num_queries, levels * points)
    # (N*M, D, Lq, L*P) summed over the samples -> (N*M, D, Lq)
    output = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1)
    return output.view(n, heads * dim, num_queries).transpose(1, 2).contiguous()


class _MSDeformAttnCompiled(torch.autograd.Function):
    """Autograd wrapper of the compiled op. Inputs are already in the dtypes it takes."""

    @staticmethod
    def forward(ctx, value, spatial_shapes, level_start_index, sampling_locations,
                attention_weights, im2col_step):
        ctx.im2col_step = im2col_step
        output = _C.ms_deform_attn_forward(
            value, spatial_shapes, level_start_index, sampling_locations, attention_weights,
            im2col_step,
        )
        ctx.save_for_backward(
            value, spatial_shapes, level_start_index, sampling_locations, attention_weights
        )
        return output

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        grad_value, grad_locations, grad_weights = _C.ms_deform_attn_backward(
            *ctx.saved_tensors, grad_output.contiguous(), ctx.im2col_step
        )
        return grad_value, None, None, grad_locations, grad_weights, None


def _use_extension(value: torch.Tensor) -> bool:
    if FORCE_PYTORCH_IMPLEMENTATION or not value.is_cuda:
        return False
    if _C is None:
        log_first_n(
            logging.WARNING,
            f"mqformer_d2._C is not built ({_C_IMPORT_ERROR}): using the PyTorch reference of multi-scale "
            "deformable attention on CUDA, which is slower and uses more memory. Reinstall with "
            "a CUDA toolkit present (see README) to compile it.",
            name=logger.name,
        )
        return False
    return True


def ms_deform_attn_compiled(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
    im2col_step: int = 64,
) -> torch.Tensor:
    """The compiled op on the inputs' device (CUDA or CPU); shapes as in `ms_deform_attn_pytorch`.

    Brings the inputs to the types the op takes, which also makes it safe under autocast: `value`
    keeps its dtype (float64/32/16, bfloat16), the attention weights follow it, and the sampling
    locations are kept in float32 (float64 for float64 values), since a half-precision location is
    off by a quarter pixel on a 256-pixel-wide level.
    """
    if _C is None:
        raise RuntimeError(f"mqformer_d2._C is not built ({_C_IMPORT_ERROR}); see the README's GPU section")
    location_dtype = torch.float64 if value.dtype == torch.float64 else torch.float32
    return _MSDeformAttnCompiled.apply(
        value.contiguous(),
        spatial_shapes.to(torch.int64).contiguous(),
        level_start_index.to(torch.int64).contiguous(),
        sampling_locations.to(location_dtype).contiguous(),
        attention_weights.to(value.dtype).contiguous(),
        im2col_step,
    )


def multi_scale_deformable_attention(
    value: torch.Tensor,
    spatial_shapes: SpatialShapes,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
    im2col_step: int = 64,
) -> torch.Tensor:
    """Multi-scale deformable attention; shapes as in `ms_deform_attn_pytorch`.

    Uses the compiled CUDA kernels when `value` is a CUDA tensor and `mqformer_d2._C` is built
    (unless `FORCE_PYTORCH_IMPLEMENTATION` is set), the PyTorch reference otherwise (on CPU it is
    vectorised and faster than the compiled CPU loops; see docs/benchmarks.md).
    """
    if not _use_extension(value):
        return ms_deform_attn_pytorch(
            value, spatial_shapes, level_start_index, sampling_locations, attention_weights
        )
    if not isinstance(spatial_shapes, torch.Tensor):
        spatial_shapes = shapes_tensor(spatial_shapes, value.device)
    return ms_deform_attn_compiled(
        value, spatial_shapes, level_start_index, sampling_locations, attention_weights, im2col_step
    )


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention module: offsets and weights are predicted from the query.

    Args:
        d_model: channels of queries and features.
        n_levels: number of feature levels L.
        n_heads: attention heads M; d_model must be divisible by it.
        n_points: sampling points P per head and level.
    """

    def __init__(self, d_model: int = 256, n_levels: int = 4, n_heads: int = 8, n_points: int = 4):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"MSDeformAttn: d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.d_model = d_model
        self.n_levels = n_levels
        self.n_heads = n_heads
        self.n_points = n_points
        self.im2col_step = 64
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.reset_parameters()

    def reset_parameters(self):
        """Offsets start on a ring: head h looks in direction 2*pi*h/M, point p at distance p+1."""
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        angles = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        directions = torch.stack([angles.cos(), angles.sin()], -1)
        # Scale each direction so that its larger coordinate is 1 (a step of one cell).
        directions = directions / directions.abs().max(-1, keepdim=True)[0]
        distances = torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        bias = directions.view(self.n_heads, 1, 1, 2).repeat(1, self.n_levels, 1, 1) * distances
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(bias.flatten())
        nn.init.constant_(self.attention_weights.weight, 0.0)
        nn.init.constant_(self.attention_weights.bias, 0.0)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.constant_(self.value_proj.bias, 0.0)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.constant_(self.output_proj.bias, 0.0)

    def forward(
        self,
        query: torch.Tensor,
        reference_points: torch.Tensor,
        input_flatten: torch.Tensor,
        input_spatial_shapes: SpatialShapes,
        input_level_start_index: torch.Tensor,
        input_padding_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """
        Args:
            query: (N, Lq, C).
            reference_points: (N, Lq, L, 2) normalised (x, y) points, or (N, Lq, L, 4) normalised
                (cx, cy, w, h) boxes; with boxes, offsets are scaled by half the box size.
            input_flatten: (N, S, C) features of all levels, flattened and concatenated.
            input_spatial_shapes: (H_l, W_l) of each level: (L, 2) int64 or L pairs.
            input_level_start_index: (L,) int64.
            input_padding_mask: (N, S) bool, True at padded positions (their values are zeroed).

        Returns:
            (N, Lq, C).
        """
        n, num_queries, _ = query.shape
        _, num_values, _ = input_flatten.shape
        shapes = level_shapes(input_spatial_shapes)
        expected = sum(height * width for height, width in shapes)
        if expected != num_values:
            raise ValueError(
                f"MSDeformAttn: input_flatten has {num_values} positions but input_spatial_shapes "
                f"{shapes} sum to {expected}"
            )
        value = self.value_proj(input_flatten)
        if input_padding_mask is not None:
            value = value.masked_fill(input_padding_mask[..., None], 0.0)
        value = value.view(n, num_values, self.n_heads, self.d_model // self.n_heads)
        offsets = self.sampling_offsets(query).view(
            n, num_queries, self.n_heads, self.n_levels, self.n_points, 2
        )
        weights = self.attention_weights(query).view(
            n, num_queries, self.n_heads, self.n_levels * self.n_points
        )
        weights = weights.softmax(-1).view(n, num_queries, self.n_heads, self.n_levels, self.n_points)
        locations = self._sampling_locations(reference_points, offsets, shapes)
        output = multi_scale_deformable_attention(
            value, input_spatial_shapes, input_level_start_index, locations, weights, self.im2col_step
        )
        return self.output_proj(output)

    def _sampling_locations(self, reference_points, offsets, spatial_shapes):
        """(N, Lq, L, 2 or 4) references + (N, Lq, M, L, P, 2) offsets -> (N, Lq, M, L, P, 2);
        spatial_shapes: L pairs (H_l, W_l)."""
        if reference_points.shape[-1] == 2:
            # Offsets are in pixels of each level: divide by (W, H).
            normalizer = shapes_tensor(spatial_shapes, offsets.device).flip(-1).to(offsets.dtype)
            return reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        if reference_points.shape[-1] == 4:
            centers = reference_points[:, :, None, :, None, :2]
            half_sizes = reference_points[:, :, None, :, None, 2:] * 0.5
            return centers + offsets / self.n_points * half_sizes
        raise ValueError(
            "MSDeformAttn: reference_points must end in 2 (points) or 4 (boxes) coordinates, "
            f"got shape {tuple(reference_points.shape)}"
        )
