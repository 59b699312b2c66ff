// Multi-scale deformable attention: forward and backward on CUDA and CPU.
//
// Shapes (N batch, S flattened positions of all levels, M heads, D channels per head, Lq queries,
// L levels, P points per level):
//   value               (N, S, M, D)           float64 / float32 / float16 / bfloat16
//   spatial_shapes      (L, 2) int64           (H_l, W_l)
//   level_start_index   (L,) int64
//   sampling_locations  (N, Lq, M, L, P, 2)    normalised (x, y); float32 (float64 with float64 value)
//   attention_weights   (N, Lq, M, L, P)       same dtype as value
//   output              (N, Lq, M * D)         same dtype as value
// All tensors contiguous and on one device. im2col_step is accepted for signature compatibility
// with other implementations: each call covers the whole batch, so any batch size works.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "ms_deform_attn_math.h"

namespace mqformer_d2 {

at::Tensor ms_deform_attn_forward(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                  const at::Tensor& level_start_index,
                                  const at::Tensor& sampling_locations,
                                  const at::Tensor& attention_weights, int64_t im2col_step);

// Returns {grad_value, grad_sampling_locations, grad_attention_weights}.
std::vector<at::Tensor> ms_deform_attn_backward(const at::Tensor& value,
                                                const at::Tensor& spatial_shapes,
                                                const at::Tensor& level_start_index,
                                                const at::Tensor& sampling_locations,
                                                const at::Tensor& attention_weights,
                                                const at::Tensor& grad_output, int64_t im2col_step);

// Per-device implementations: inputs already checked, outputs allocated by the caller
// (grad_value zero-filled, in the sampling locations' dtype).
void ms_deform_attn_forward_cpu(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                const at::Tensor& level_start_index,
                                const at::Tensor& sampling_locations,
                                const at::Tensor& attention_weights, at::Tensor& output);
void ms_deform_attn_backward_cpu(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                 const at::Tensor& level_start_index,
                                 const at::Tensor& sampling_locations,
                                 const at::Tensor& attention_weights, const at::Tensor& grad_output,
                                 at::Tensor& grad_value, at::Tensor& grad_locations,
                                 at::Tensor& grad_weights);
void ms_deform_attn_forward_cuda(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                 const at::Tensor& level_start_index,
                                 const at::Tensor& sampling_locations,
                                 const at::Tensor& attention_weights, at::Tensor& output);
void ms_deform_attn_backward_cuda(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                  const at::Tensor& level_start_index,
                                  const at::Tensor& sampling_locations,
                                  const at::Tensor& attention_weights, const at::Tensor& grad_output,
                                  at::Tensor& grad_value, at::Tensor& grad_locations,
                                  at::Tensor& grad_weights);

// The raw pointers and sizes of one call, for the per-element math.
template <typename scalar_t, typename acc_t>
math::Problem<scalar_t, acc_t> make_problem(const at::Tensor& value, const at::Tensor& shapes,
                                            const at::Tensor& starts, const at::Tensor& locations,
                                            const at::Tensor& weights) {
  return {value.data_ptr<scalar_t>(), shapes.data_ptr<int64_t>(), starts.data_ptr<int64_t>(),
          locations.data_ptr<acc_t>(), weights.data_ptr<scalar_t>(), value.size(1), value.size(2),
          value.size(3), locations.size(1), locations.size(3), locations.size(4)};
}

}  // namespace mqformer_d2
