// CPU loops over the same per-element math as the CUDA kernels (ms_deform_attn_math.h).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include "ms_deform_attn.h"

namespace mqformer_d2 {

void ms_deform_attn_forward_cpu(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                const at::Tensor& level_start_index,
                                const at::Tensor& sampling_locations,
                                const at::Tensor& attention_weights, at::Tensor& output) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::ScalarType::Half, at::ScalarType::BFloat16, value.scalar_type(), "ms_deform_attn_forward_cpu", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const auto problem = make_problem<scalar_t, acc_t>(value, spatial_shapes, level_start_index,
                                                           sampling_locations, attention_weights);
        scalar_t* out = output.data_ptr<scalar_t>();
        // Output elements are independent: split them across threads.
        at::parallel_for(0, output.numel(), 1024, [&](int64_t begin, int64_t end) {
          for (int64_t index = begin; index < end; ++index) {
            out[index] = static_cast<scalar_t>(math::forward_element(problem, index));
          }
        });
      });
}

void ms_deform_attn_backward_cpu(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                 const at::Tensor& level_start_index,
                                 const at::Tensor& sampling_locations,
                                 const at::Tensor& attention_weights, const at::Tensor& grad_output,
                                 at::Tensor& grad_value, at::Tensor& grad_locations,
                                 at::Tensor& grad_weights) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::ScalarType::Half, at::ScalarType::BFloat16, value.scalar_type(), "ms_deform_attn_backward_cpu", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const auto problem = make_problem<scalar_t, acc_t>(value, spatial_shapes, level_start_index,
                                                           sampling_locations, attention_weights);
        // Serial: samples of different queries add into the same value-gradient pixels.
        const int64_t total = attention_weights.numel();
        for (int64_t sample = 0; sample < total; ++sample) {
          math::backward_sample(problem, sample, grad_output.data_ptr<scalar_t>(),
                                grad_value.data_ptr<acc_t>(), grad_locations.data_ptr<acc_t>(),
                                grad_weights.data_ptr<scalar_t>());
        }
      });
}

}  // namespace mqformer_d2
