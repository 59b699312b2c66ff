// Input checks and device dispatch of multi-scale deformable attention.
#include "ms_deform_attn.h"

#include <utility>

namespace mqformer_d2 {
namespace {

void check_inputs(const at::Tensor& value, const at::Tensor& spatial_shapes,
                  const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                  const at::Tensor& attention_weights, int64_t im2col_step) {
  TORCH_CHECK(im2col_step > 0, "ms_deform_attn: im2col_step must be positive, got ", im2col_step);
  const std::pair<const char*, const at::Tensor*> named[] = {
      {"value", &value},
      {"spatial_shapes", &spatial_shapes},
      {"level_start_index", &level_start_index},
      {"sampling_locations", &sampling_locations},
      {"attention_weights", &attention_weights}};
  for (const auto& item : named) {
    TORCH_CHECK(item.second->device() == value.device(), "ms_deform_attn: ", item.first,
                " is on ", item.second->device(), " but value is on ", value.device());
    TORCH_CHECK(item.second->is_contiguous(), "ms_deform_attn: ", item.first, " must be contiguous");
  }
  TORCH_CHECK(value.dim() == 4, "ms_deform_attn: value must be (N, S, M, D), got ", value.sizes());
  TORCH_CHECK(sampling_locations.dim() == 6 && sampling_locations.size(5) == 2,
              "ms_deform_attn: sampling_locations must be (N, Lq, M, L, P, 2), got ",
              sampling_locations.sizes());
  TORCH_CHECK(attention_weights.sizes() == sampling_locations.sizes().slice(0, 5),
              "ms_deform_attn: attention_weights ", attention_weights.sizes(),
              " must match sampling_locations ", sampling_locations.sizes(), " without its last dim");
  const int64_t levels = sampling_locations.size(3);
  TORCH_CHECK(spatial_shapes.dim() == 2 && spatial_shapes.size(0) == levels && spatial_shapes.size(1) == 2,
              "ms_deform_attn: spatial_shapes must be (L, 2) with L = ", levels, ", got ", spatial_shapes.sizes());
  TORCH_CHECK(level_start_index.numel() == levels, "ms_deform_attn: level_start_index must have ",
              levels, " entries, got ", level_start_index.numel());
  TORCH_CHECK(spatial_shapes.scalar_type() == at::kLong && level_start_index.scalar_type() == at::kLong,
              "ms_deform_attn: spatial_shapes and level_start_index must be int64");
  TORCH_CHECK(sampling_locations.size(0) == value.size(0) && sampling_locations.size(2) == value.size(2),
              "ms_deform_attn: batch or head count of sampling_locations ", sampling_locations.sizes(),
              " differs from value ", value.sizes());
  TORCH_CHECK(attention_weights.scalar_type() == value.scalar_type(), "ms_deform_attn: attention_weights dtype ",
              attention_weights.scalar_type(), " must equal value dtype ", value.scalar_type());
  const auto location_type = value.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  TORCH_CHECK(sampling_locations.scalar_type() == location_type, "ms_deform_attn: sampling_locations must be ",
              location_type, " for ", value.scalar_type(), " values, got ", sampling_locations.scalar_type());
}

}  // namespace

at::Tensor ms_deform_attn_forward(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                  const at::Tensor& level_start_index,
                                  const at::Tensor& sampling_locations,
                                  const at::Tensor& attention_weights, int64_t im2col_step) {
  check_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, im2col_step);
  auto output = at::empty({value.size(0), sampling_locations.size(1), value.size(2) * value.size(3)},
                          value.options());
  if (value.is_cuda()) {
    ms_deform_attn_forward_cuda(value, spatial_shapes, level_start_index, sampling_locations,
                                attention_weights, output);
  } else {
    ms_deform_attn_forward_cpu(value, spatial_shapes, level_start_index, sampling_locations,
                               attention_weights, output);
  }
  return output;
}

std::vector<at::Tensor> ms_deform_attn_backward(const at::Tensor& value,
                                                const at::Tensor& spatial_shapes,
                                                const at::Tensor& level_start_index,
                                                const at::Tensor& sampling_locations,
                                                const at::Tensor& attention_weights,
                                                const at::Tensor& grad_output, int64_t im2col_step) {
  check_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, im2col_step);
  TORCH_CHECK(grad_output.device() == value.device() && grad_output.is_contiguous() &&
                  grad_output.scalar_type() == value.scalar_type(),
              "ms_deform_attn: grad_output must be contiguous, on value's device, of value's dtype");
  // Accumulate the value gradient in float32 (float64): no half-precision atomics or sums.
  auto grad_value = at::zeros(value.sizes(), value.options().dtype(sampling_locations.scalar_type()));
  auto grad_locations = at::empty_like(sampling_locations);
  auto grad_weights = at::empty_like(attention_weights);
  if (value.is_cuda()) {
    ms_deform_attn_backward_cuda(value, spatial_shapes, level_start_index, sampling_locations,
                                 attention_weights, grad_output, grad_value, grad_locations, grad_weights);
  } else {
    ms_deform_attn_backward_cpu(value, spatial_shapes, level_start_index, sampling_locations,
                                attention_weights, grad_output, grad_value, grad_locations, grad_weights);
  }
  return {grad_value.to(value.scalar_type()), grad_locations, grad_weights};
}

}  // namespace mqformer_d2
