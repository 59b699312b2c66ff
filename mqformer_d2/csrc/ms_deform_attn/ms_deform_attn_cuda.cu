// CUDA kernels of multi-scale deformable attention; the math lives in ms_deform_attn_math.h.
//
// Work split:
//   forward   one thread per output element (n, q, m, d): loops over the L*P samples, so
//             neighbouring threads read neighbouring channels (coalesced).
//   backward  one thread per sampling point (n, q, m, l, p): loops over the D channels, so the
//             gradients of the point's location and weight need no cross-thread reduction; the
//             value gradient is scattered with atomicAdd into a float32 (float64) buffer, which
//             avoids half-precision atomics, and cast to value's dtype by the caller.
// Both kernels cover the whole batch in one launch, so any batch size works.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

#include "ms_deform_attn.h"
#include "ms_deform_attn_math.h"

namespace mqformer_d2 {
namespace {

constexpr int kThreadsPerBlock = 256;
constexpr int64_t kMaxBlocks = 65535;  // grid-stride loops cover the rest

int64_t blocks_for(int64_t work_items) {
  return std::min<int64_t>((work_items + kThreadsPerBlock - 1) / kThreadsPerBlock, kMaxBlocks);
}

__device__ inline int64_t first_index() {
  return blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
}

__device__ inline int64_t grid_stride() { return static_cast<int64_t>(blockDim.x) * gridDim.x; }

template <typename scalar_t, typename acc_t>
__global__ void forward_kernel(const math::Problem<scalar_t, acc_t> problem, int64_t total,
                               scalar_t* __restrict__ output) {
  for (int64_t index = first_index(); index < total; index += grid_stride()) {
    output[index] = static_cast<scalar_t>(math::forward_element(problem, index));
  }
}

template <typename scalar_t, typename acc_t>
__global__ void backward_kernel(const math::Problem<scalar_t, acc_t> problem, int64_t total,
                                const scalar_t* __restrict__ grad_output, acc_t* grad_value,
                                acc_t* __restrict__ grad_sampling_locations,
                                scalar_t* __restrict__ grad_attention_weights) {
  for (int64_t sample = first_index(); sample < total; sample += grid_stride()) {
    math::backward_sample(problem, sample, grad_output, grad_value, grad_sampling_locations,
                          grad_attention_weights);
  }
}

}  // namespace

void ms_deform_attn_forward_cuda(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                 const at::Tensor& level_start_index,
                                 const at::Tensor& sampling_locations,
                                 const at::Tensor& attention_weights, at::Tensor& output) {
  const c10::cuda::CUDAGuard device_guard(value.device());
  const int64_t total = output.numel();
  if (total == 0) return;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::ScalarType::Half, at::ScalarType::BFloat16, value.scalar_type(), "ms_deform_attn_forward_cuda", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const auto problem = make_problem<scalar_t, acc_t>(value, spatial_shapes, level_start_index,
                                                           sampling_locations, attention_weights);
        forward_kernel<scalar_t, acc_t><<<blocks_for(total), kThreadsPerBlock, 0, stream>>>(
            problem, total, output.data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

void ms_deform_attn_backward_cuda(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                  const at::Tensor& level_start_index,
                                  const at::Tensor& sampling_locations,
                                  const at::Tensor& attention_weights, const at::Tensor& grad_output,
                                  at::Tensor& grad_value, at::Tensor& grad_locations,
                                  at::Tensor& grad_weights) {
  const c10::cuda::CUDAGuard device_guard(value.device());
  const int64_t total = attention_weights.numel();
  if (total == 0) return;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::ScalarType::Half, at::ScalarType::BFloat16, value.scalar_type(), "ms_deform_attn_backward_cuda", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const auto problem = make_problem<scalar_t, acc_t>(value, spatial_shapes, level_start_index,
                                                           sampling_locations, attention_weights);
        backward_kernel<scalar_t, acc_t><<<blocks_for(total), kThreadsPerBlock, 0, stream>>>(
            problem, total, grad_output.data_ptr<scalar_t>(), grad_value.data_ptr<acc_t>(),
            grad_locations.data_ptr<acc_t>(), grad_weights.data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

}  // namespace mqformer_d2
