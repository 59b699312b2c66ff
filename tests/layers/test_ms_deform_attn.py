"""Multi-scale deformable attention: the PyTorch reference, the module, dispatch, and the compiled
op against the reference: its CPU loops wherever it is built (CI builds it with FORCE_CUDA=1), and
its CUDA kernels, which run the same per-element code, on a GPU."""
import logging
from collections import Counter

import pytest
import torch
from detectron2.utils import logger as detectron2_logger

from mqformer_d2.layers import ms_deform_attn as msda
from mqformer_d2.layers import (
    MSDeformAttn,
    extension_available,
    ms_deform_attn_compiled,
    ms_deform_attn_pytorch,
    multi_scale_deformable_attention,
)

requires_extension = pytest.mark.skipif(not extension_available(), reason="mqformer_d2._C was not built")
requires_cuda_kernel = pytest.mark.skipif(
    not (torch.cuda.is_available() and extension_available()),
    reason="needs a CUDA GPU and the compiled mqformer_d2._C",
)
DEVICES = ["cpu", pytest.param("cuda", marks=[requires_cuda_kernel, pytest.mark.cuda])]


def slow_deformable_attention(value, spatial_shapes, sampling_locations, attention_weights):
    """Independent implementation: explicit loops over levels, points and the 4 bilinear corners,
    with pixel gathers instead of grid_sample. Same shapes as ms_deform_attn_pytorch."""
    n, _, heads, dim = value.shape
    _, queries, _, levels, points, _ = sampling_locations.shape
    batch_index = torch.arange(n)[:, None, None]
    head_index = torch.arange(heads)[None, None, :]
    output = value.new_zeros(n, queries, heads, dim)
    start = 0
    for level in range(levels):
        height, width = (int(s) for s in spatial_shapes[level])
        level_value = value[:, start:start + height * width].view(n, height, width, heads, dim)
        start += height * width
        for point in range(points):
            # Pixel centres sit at (i + 0.5) / size in normalised coordinates.
            x = sampling_locations[:, :, :, level, point, 0] * width - 0.5
            y = sampling_locations[:, :, :, level, point, 1] * height - 0.5
            x0, y0 = x.floor(), y.floor()
            sample = value.new_zeros(n, queries, heads, dim)
            for dy in (0, 1):
                for dx in (0, 1):
                    corner_y, corner_x = y0 + dy, x0 + dx
                    weight = (1 - (y - corner_y).abs()) * (1 - (x - corner_x).abs())
                    inside = (corner_y >= 0) & (corner_y < height) & (corner_x >= 0) & (corner_x < width)
                    gathered = level_value[
                        batch_index,
                        corner_y.clamp(0, height - 1).long(),
                        corner_x.clamp(0, width - 1).long(),
                        head_index,
                    ]
                    sample += (weight * inside)[..., None] * gathered
            output += attention_weights[:, :, :, level, point, None] * sample
    return output.flatten(2)


def random_problem(shapes, n=2, queries=7, heads=3, dim=5, points=2, spread=(0.0, 1.0),
                   dtype=torch.float32, device="cpu", seed=0):
    """Random inputs of the op. `spread` is the range of the normalised sampling locations."""
    generator = torch.Generator().manual_seed(seed)
    spatial_shapes = torch.tensor(shapes, dtype=torch.int64)
    sizes = spatial_shapes.prod(1)
    level_start_index = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    levels = len(shapes)
    value = torch.randn(n, int(sizes.sum()), heads, dim, generator=generator, dtype=torch.float64)
    low, high = spread
    locations = low + (high - low) * torch.rand(
        n, queries, heads, levels, points, 2, generator=generator, dtype=torch.float64
    )
    weights = torch.rand(n, queries, heads, levels, points, generator=generator, dtype=torch.float64)
    weights = weights / weights.sum((-1, -2), keepdim=True)
    tensors = [value, spatial_shapes, level_start_index, locations, weights]
    return [t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device) for t in tensors]


@pytest.mark.parametrize(
    "shapes, spread",
    [
        ([(6, 6)], (0.0, 1.0)),
        ([(5, 9), (3, 4), (2, 1)], (0.0, 1.0)),  # non-square levels, a 1-pixel-wide one
        ([(8, 3), (4, 7)], (-0.4, 1.4)),  # many points outside the image: zero padding
    ],
)
def test_reference_matches_independent_implementation(shapes, spread):
    value, spatial_shapes, start_index, locations, weights = random_problem(shapes, spread=spread)
    expected = slow_deformable_attention(value, spatial_shapes, locations, weights)
    actual = ms_deform_attn_pytorch(value, spatial_shapes, start_index, locations, weights)
    assert actual.shape == (2, 7, 3 * 5)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_reference_hand_computed_values():
    """One 2x2 level with values 1..4: a pixel centre reads that pixel; the image centre reads
    the mean of the four; a point beyond the left edge by half a pixel reads half the edge."""
    value = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1)
    spatial_shapes = torch.tensor([[2, 2]])
    start_index = torch.tensor([0])
    locations = torch.tensor([[0.25, 0.25], [0.75, 0.75], [0.5, 0.5], [0.0, 0.25]]).view(1, 4, 1, 1, 1, 2)
    weights = torch.ones(1, 4, 1, 1, 1)
    output = ms_deform_attn_pytorch(value, spatial_shapes, start_index, locations, weights)
    torch.testing.assert_close(output.flatten(), torch.tensor([1.0, 4.0, 2.5, 0.5]))


@pytest.mark.parametrize("op", [
    ms_deform_attn_pytorch,
    # The compiled gradient formulas are the ones the CUDA kernels run.
    pytest.param(ms_deform_attn_compiled, marks=requires_extension),
], ids=["reference", "compiled"])
def test_gradcheck_float64(op):
    value, spatial_shapes, start_index, locations, weights = random_problem(
        [(4, 5), (2, 3)], n=1, queries=3, heads=2, dim=3, points=2, spread=(-0.1, 1.1),
        dtype=torch.float64,
    )
    inputs = [t.requires_grad_() for t in (value, locations, weights)]

    def function(v, loc, w):
        return op(v, spatial_shapes, start_index, loc, w)

    assert torch.autograd.gradcheck(function, inputs, eps=1e-6, atol=1e-5)


def test_dispatch_uses_reference_on_cpu():
    inputs = random_problem([(4, 4), (2, 2)])
    torch.testing.assert_close(multi_scale_deformable_attention(*inputs), ms_deform_attn_pytorch(*inputs))


class _FakeCudaTensor:
    is_cuda = True


class _CollectMessages(logging.Handler):
    """Records what one logger emits, whether or not it propagates to the root logger (training
    set-up through detectron2's setup_logger turns propagation off for the package's loggers)."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_missing_extension_warns_once_and_falls_back(monkeypatch):
    monkeypatch.setattr(msda, "_C", None)
    monkeypatch.setattr(detectron2_logger, "_LOG_COUNTER", Counter())  # as if nothing was logged yet
    collected = _CollectMessages()
    msda.logger.addHandler(collected)
    try:
        assert msda._use_extension(_FakeCudaTensor()) is False
        assert msda._use_extension(_FakeCudaTensor()) is False
    finally:
        msda.logger.removeHandler(collected)
    assert sum("not built" in message for message in collected.messages) == 1


def test_force_flag_selects_reference(monkeypatch):
    monkeypatch.setattr(msda, "_C", object())
    assert msda._use_extension(_FakeCudaTensor()) is True
    monkeypatch.setattr(msda, "FORCE_PYTORCH_IMPLEMENTATION", True)
    assert msda._use_extension(_FakeCudaTensor()) is False


@requires_extension
def test_compiled_op_rejects_bad_inputs_clearly():
    value, spatial_shapes, start_index, locations, weights = random_problem([(3, 3)])
    with pytest.raises(RuntimeError, match="sampling_locations must be Float"):
        msda._C.ms_deform_attn_forward(value, spatial_shapes, start_index, locations.double(), weights, 64)
    with pytest.raises(RuntimeError, match="attention_weights .* must match"):
        msda._C.ms_deform_attn_forward(value, spatial_shapes, start_index, locations, weights[..., :1].contiguous(), 64)


def _module_inputs(reference_dim, n=2, queries=5, d_model=16, seed=0):
    torch.manual_seed(seed)
    shapes = torch.tensor([[6, 8], [3, 4]])
    sizes = shapes.prod(1)
    start_index = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    query = torch.randn(n, queries, d_model)
    features = torch.randn(n, int(sizes.sum()), d_model)
    reference = torch.rand(n, queries, 2, reference_dim)
    return query, reference, features, shapes, start_index


@pytest.mark.parametrize("reference_dim", [2, 4])
def test_module_shapes_and_gradients(reference_dim):
    module = MSDeformAttn(d_model=16, n_levels=2, n_heads=4, n_points=3)
    # The offset and weight projections start at zero (so the query gets no gradient yet);
    # randomise them to check that the query's gradient path through both is connected.
    torch.nn.init.normal_(module.sampling_offsets.weight, std=0.1)
    torch.nn.init.normal_(module.attention_weights.weight, std=0.1)
    query, reference, features, shapes, start_index = _module_inputs(reference_dim)
    query.requires_grad_()
    output = module(query, reference, features, shapes, start_index)
    assert output.shape == query.shape
    output.square().sum().backward()
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert query.grad.abs().sum() > 0


def test_module_box_references_scale_offsets_with_box_size():
    """With 4-d references the sampling area grows with the box: a tiny box centred on a pixel
    samples (almost) only that pixel's value, whatever the offsets."""
    module = MSDeformAttn(d_model=8, n_levels=1, n_heads=2, n_points=4)
    shapes, start_index = torch.tensor([[4, 4]]), torch.tensor([0])
    features = torch.randn(1, 16, 8)
    query = torch.randn(1, 1, 8)
    tiny_box = torch.tensor([0.375, 0.625, 1e-6, 1e-6]).view(1, 1, 1, 4)  # centre of pixel (x=1, y=2)
    output = module(query, tiny_box, features, shapes, start_index)
    value = module.value_proj(features)[0, 2 * 4 + 1]
    torch.testing.assert_close(output[0, 0], module.output_proj(value), atol=1e-4, rtol=1e-4)


def test_module_padding_mask_zeroes_padded_values():
    module = MSDeformAttn(d_model=16, n_levels=2, n_heads=4, n_points=3)
    query, reference, features, shapes, start_index = _module_inputs(2)
    padding = torch.zeros(features.shape[:2], dtype=torch.bool)
    padding[:, :10] = True
    baseline = module(query, reference, features, shapes, start_index, padding)
    changed = features.clone()
    changed[:, :10] = 1e3
    torch.testing.assert_close(module(query, reference, changed, shapes, start_index, padding), baseline)


def test_module_under_cpu_autocast():
    """Under autocast the value projection runs in bfloat16 while locations stay float32."""
    module = MSDeformAttn(d_model=16, n_levels=2, n_heads=4, n_points=3)
    query, reference, features, shapes, start_index = _module_inputs(4)
    expected = module(query, reference, features, shapes, start_index)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = module(query, reference, features, shapes, start_index)
    torch.testing.assert_close(output.float(), expected, atol=5e-2, rtol=5e-2)


def test_module_rejects_bad_arguments():
    with pytest.raises(ValueError, match="divisible"):
        MSDeformAttn(d_model=10, n_heads=4)
    module = MSDeformAttn(d_model=16, n_levels=2, n_heads=4, n_points=3)
    query, reference, features, shapes, start_index = _module_inputs(2)
    with pytest.raises(ValueError, match="input_spatial_shapes"):
        module(query, reference, features[:, :-1], shapes, start_index)
    with pytest.raises(ValueError, match="reference_points"):
        module(query, reference[..., :1], features, shapes, start_index)


# --- compiled op against the reference: CPU loops (when built) and CUDA kernels (on a GPU) ---------

TOLERANCES = {
    torch.float64: dict(atol=1e-10, rtol=1e-10),
    torch.float32: dict(atol=1e-5, rtol=1e-4),
    torch.float16: dict(atol=3e-3, rtol=3e-3),
    torch.bfloat16: dict(atol=3e-2, rtol=3e-2),
}


def _forward_backward(op, inputs, grad_output):
    value, shapes, start, locations, weights = inputs
    leaves = [t.detach().clone().requires_grad_() for t in (value, locations, weights)]
    output = op(leaves[0], shapes, start, leaves[1], leaves[2])
    output.backward(grad_output)
    return [output] + [leaf.grad for leaf in leaves]


@requires_extension
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", list(TOLERANCES))
@pytest.mark.parametrize("n", [1, 3, 65])  # 65: not a multiple of im2col_step=64
def test_compiled_op_matches_reference(device, dtype, n):
    """The compiled op in `dtype` against the float64 reference on the same inputs."""
    queries = 11 if n < 65 else 3
    inputs = random_problem([(12, 17), (6, 9), (3, 5), (2, 3)], n=n, queries=queries, heads=4, dim=8,
                            points=3, spread=(-0.2, 1.2), dtype=torch.float64, device=device)
    value, shapes, start, locations, weights = inputs
    grad_output = torch.randn(n, queries, 4 * 8, device=device, dtype=torch.float64)
    expected = _forward_backward(ms_deform_attn_pytorch, inputs, grad_output)
    cast = [value.to(dtype), shapes, start, locations, weights.to(dtype)]
    actual = _forward_backward(ms_deform_attn_compiled, cast, grad_output.to(dtype))
    names = ["output", "grad_value", "grad_locations", "grad_weights"]
    for name, got, want in zip(names, actual, expected):
        # Compare relative to each tensor's largest entry: location gradients scale with the
        # level size (d/dx = W * ...), values with their random range.
        scale = want.abs().max().clamp_min(1.0)
        torch.testing.assert_close(got.double() / scale, want / scale, **TOLERANCES[dtype], msg=name)


@requires_extension
@pytest.mark.parametrize("device", DEVICES)
def test_compiled_op_empty_query_set(device):
    value, shapes, start, locations, weights = random_problem([(4, 4)], queries=0, device=device)
    value.requires_grad_()
    output = ms_deform_attn_compiled(value, shapes, start, locations, weights)
    assert output.shape == (2, 0, 3 * 5)
    output.sum().backward()
    assert torch.count_nonzero(value.grad) == 0


@requires_cuda_kernel
@pytest.mark.cuda
def test_cuda_dispatch_uses_the_kernel_and_matches():
    inputs = random_problem([(6, 7), (3, 4)], device="cuda")
    assert msda._use_extension(inputs[0])
    torch.testing.assert_close(multi_scale_deformable_attention(*inputs), ms_deform_attn_pytorch(*inputs),
                               atol=1e-5, rtol=1e-4)


@requires_cuda_kernel
@pytest.mark.cuda
def test_cuda_kernel_under_autocast():
    module = MSDeformAttn(d_model=32, n_levels=2, n_heads=4, n_points=2).cuda()
    query, reference, features, shapes, start_index = (t.cuda() for t in _module_inputs(4, d_model=32))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        output = module(query, reference, features, shapes, start_index)
    expected = module(query, reference, features, shapes, start_index)
    torch.testing.assert_close(output.float(), expected, atol=5e-2, rtol=5e-2)
