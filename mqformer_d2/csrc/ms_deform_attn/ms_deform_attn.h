// Multi-scale deformable attention: CUDA forward and backward.
//
// Shapes (N batch, S flattened positions of all levels, M heads, D channels per head, Lq queries,
// L levels, P points per level):
//   value               (N, S, M, D)           float64 / float32 / float16 / bfloat16
//   spatial_shapes      (L, 2) int64           (H_l, W_l)
//   level_start_index   (L,) int64
//   sampling_locations  (N, Lq, M, L, P, 2)    normalised (x, y); float32 (float64 with float64 value)
//   attention_weights   (N, Lq, M, L, P)       same dtype as value
//   output              (N, Lq, M * D)         same dtype as value
#pragma once
#include <ATen/ATen.h>

#include <vector>

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

}  // namespace mqformer_d2
