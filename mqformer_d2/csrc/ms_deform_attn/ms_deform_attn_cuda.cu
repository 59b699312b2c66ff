// CUDA kernels of multi-scale deformable attention. Shapes and dtypes: see ms_deform_attn.h.
//
// Sampling follows F.grid_sample(mode="bilinear", padding_mode="zeros", align_corners=False): a
// normalised location x in [0, 1] maps to pixel coordinate x * W - 0.5, and corners outside the
// level read as zero.
//
// Work split:
//   forward   one thread per output element (n, q, m, d): loops over the L*P samples, so
//             neighbouring threads read neighbouring channels (coalesced).
//   backward  one thread per sampling point (n, q, m, l, p): loops over the D channels, so the
//             gradients of the point's location and weight need no cross-thread reduction; the
//             value gradient is scattered with atomicAdd into a float32 (float64) buffer, which
//             avoids half-precision atomics, and cast to value's dtype at the end.
// Both kernels cover the whole batch in one launch, so any batch size works; im2col_step is kept
// only for signature compatibility with other implementations.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <vector>

#include "ms_deform_attn.h"

namespace mqformer_d2 {
namespace {

constexpr int kThreadsPerBlock = 256;
constexpr int64_t kMaxBlocks = 65535;

int64_t blocks_for(int64_t work_items) {
  return std::min<int64_t>((work_items + kThreadsPerBlock - 1) / kThreadsPerBlock, kMaxBlocks);
}

// Where a normalised location falls on an H x W level: the top-left corner (y0, x0) of the 2x2
// neighbourhood, the fractional offsets, and whether any corner can lie inside the level.
template <typename acc_t>
struct BilinearCell {
  int64_t y0, x0;
  acc_t ly, lx;
  bool inside;

  __device__ BilinearCell(acc_t x, acc_t y, int64_t height, int64_t width) {
    const acc_t h_im = y * static_cast<acc_t>(height) - acc_t(0.5);
    const acc_t w_im = x * static_cast<acc_t>(width) - acc_t(0.5);
    inside = h_im > acc_t(-1) && w_im > acc_t(-1) && h_im < static_cast<acc_t>(height) &&
             w_im < static_cast<acc_t>(width);
    const acc_t y_floor = floor(h_im);
    const acc_t x_floor = floor(w_im);
    y0 = static_cast<int64_t>(y_floor);
    x0 = static_cast<int64_t>(x_floor);
    ly = h_im - y_floor;
    lx = w_im - x_floor;
  }
};

// Value of the level at (y, x) for one channel, zero outside; `level` points at channel d of
// position 0, and positions are `position_stride` elements apart.
template <typename scalar_t, typename acc_t>
__device__ acc_t read_or_zero(const scalar_t* level, int64_t y, int64_t x, int64_t height,
                              int64_t width, int64_t position_stride) {
  if (y < 0 || x < 0 || y >= height || x >= width) return acc_t(0);
  return static_cast<acc_t>(level[(y * width + x) * position_stride]);
}

template <typename scalar_t, typename acc_t>
__global__ void forward_kernel(int64_t total, const scalar_t* __restrict__ value,
                               const int64_t* __restrict__ spatial_shapes,
                               const int64_t* __restrict__ level_start_index,
                               const acc_t* __restrict__ sampling_locations,
                               const scalar_t* __restrict__ attention_weights, int64_t positions,
                               int64_t heads, int64_t channels, int64_t queries, int64_t levels,
                               int64_t points, scalar_t* __restrict__ output) {
  const int64_t position_stride = heads * channels;
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    // index enumerates (n, q, m, d) in output order.
    const int64_t d = index % channels;
    const int64_t head_row = index / channels;  // (n * Lq + q) * M + m
    const int64_t m = head_row % heads;
    const int64_t n = head_row / heads / queries;
    const scalar_t* batch_value = value + n * positions * position_stride + m * channels + d;
    int64_t sample = head_row * levels * points;
    acc_t accumulated = 0;
    for (int64_t l = 0; l < levels; ++l) {
      const int64_t height = spatial_shapes[2 * l];
      const int64_t width = spatial_shapes[2 * l + 1];
      const scalar_t* level = batch_value + level_start_index[l] * position_stride;
      for (int64_t p = 0; p < points; ++p, ++sample) {
        const BilinearCell<acc_t> cell(sampling_locations[2 * sample],
                                       sampling_locations[2 * sample + 1], height, width);
        if (!cell.inside) continue;
        const acc_t hy = 1 - cell.ly, hx = 1 - cell.lx;
        const acc_t sampled =
            hy * hx * read_or_zero<scalar_t, acc_t>(level, cell.y0, cell.x0, height, width, position_stride) +
            hy * cell.lx * read_or_zero<scalar_t, acc_t>(level, cell.y0, cell.x0 + 1, height, width, position_stride) +
            cell.ly * hx * read_or_zero<scalar_t, acc_t>(level, cell.y0 + 1, cell.x0, height, width, position_stride) +
            cell.ly * cell.lx * read_or_zero<scalar_t, acc_t>(level, cell.y0 + 1, cell.x0 + 1, height, width, position_stride);
        accumulated += static_cast<acc_t>(attention_weights[sample]) * sampled;
      }
    }
    output[index] = static_cast<scalar_t>(accumulated);
  }
}

// Adds `amount` to the value gradient at (y, x) if that corner is inside the level.
template <typename acc_t>
__device__ void scatter_if_inside(acc_t* level_grad, int64_t y, int64_t x, int64_t height,
                                  int64_t width, int64_t position_stride, acc_t amount) {
  if (y < 0 || x < 0 || y >= height || x >= width) return;
  atomicAdd(level_grad + (y * width + x) * position_stride, amount);
}

template <typename scalar_t, typename acc_t>
__global__ void backward_kernel(int64_t total, const scalar_t* __restrict__ value,
                                const int64_t* __restrict__ spatial_shapes,
                                const int64_t* __restrict__ level_start_index,
                                const acc_t* __restrict__ sampling_locations,
                                const scalar_t* __restrict__ attention_weights,
                                const scalar_t* __restrict__ grad_output, int64_t positions,
                                int64_t heads, int64_t channels, int64_t queries, int64_t levels,
                                int64_t points, acc_t* __restrict__ grad_value,
                                acc_t* __restrict__ grad_sampling_locations,
                                scalar_t* __restrict__ grad_attention_weights) {
  const int64_t position_stride = heads * channels;
  for (int64_t sample = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       sample < total; sample += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    // sample enumerates (n, q, m, l, p) in the order of attention_weights.
    const int64_t l = sample / points % levels;
    const int64_t head_row = sample / points / levels;  // (n * Lq + q) * M + m
    const int64_t m = head_row % heads;
    const int64_t n = head_row / heads / queries;
    const int64_t height = spatial_shapes[2 * l];
    const int64_t width = spatial_shapes[2 * l + 1];
    const BilinearCell<acc_t> cell(sampling_locations[2 * sample],
                                   sampling_locations[2 * sample + 1], height, width);
    acc_t grad_weight = 0, grad_lx = 0, grad_ly = 0;
    if (cell.inside) {
      const int64_t level_offset =
          (n * positions + level_start_index[l]) * position_stride + m * channels;
      const scalar_t* level = value + level_offset;
      acc_t* level_grad = grad_value + level_offset;
      const scalar_t* grad_row = grad_output + head_row * channels;
      const acc_t weight = static_cast<acc_t>(attention_weights[sample]);
      const acc_t ly = cell.ly, lx = cell.lx, hy = 1 - ly, hx = 1 - lx;
      const int64_t y0 = cell.y0, x0 = cell.x0;
      for (int64_t d = 0; d < channels; ++d) {
        const scalar_t* channel = level + d;
        const acc_t v00 = read_or_zero<scalar_t, acc_t>(channel, y0, x0, height, width, position_stride);
        const acc_t v01 = read_or_zero<scalar_t, acc_t>(channel, y0, x0 + 1, height, width, position_stride);
        const acc_t v10 = read_or_zero<scalar_t, acc_t>(channel, y0 + 1, x0, height, width, position_stride);
        const acc_t v11 = read_or_zero<scalar_t, acc_t>(channel, y0 + 1, x0 + 1, height, width, position_stride);
        const acc_t grad = static_cast<acc_t>(grad_row[d]);
        grad_weight += grad * (hy * hx * v00 + hy * lx * v01 + ly * hx * v10 + ly * lx * v11);
        const acc_t weighted = grad * weight;
        // d(sample)/d(lx) and d(sample)/d(ly) of the bilinear interpolation.
        grad_lx += weighted * (hy * (v01 - v00) + ly * (v11 - v10));
        grad_ly += weighted * (hx * (v10 - v00) + lx * (v11 - v01));
        acc_t* channel_grad = level_grad + d;
        scatter_if_inside(channel_grad, y0, x0, height, width, position_stride, weighted * hy * hx);
        scatter_if_inside(channel_grad, y0, x0 + 1, height, width, position_stride, weighted * hy * lx);
        scatter_if_inside(channel_grad, y0 + 1, x0, height, width, position_stride, weighted * ly * hx);
        scatter_if_inside(channel_grad, y0 + 1, x0 + 1, height, width, position_stride, weighted * ly * lx);
      }
    }
    grad_attention_weights[sample] = static_cast<scalar_t>(grad_weight);
    // lx = x * W - 0.5 - floor(.), so d(lx)/dx = W; likewise d(ly)/dy = H.
    grad_sampling_locations[2 * sample] = grad_lx * static_cast<acc_t>(width);
    grad_sampling_locations[2 * sample + 1] = grad_ly * static_cast<acc_t>(height);
  }
}

void check_inputs(const at::Tensor& value, const at::Tensor& spatial_shapes,
                  const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                  const at::Tensor& attention_weights) {
  const auto named = std::vector<std::pair<const char*, const at::Tensor*>>{
      {"value", &value},
      {"spatial_shapes", &spatial_shapes},
      {"level_start_index", &level_start_index},
      {"sampling_locations", &sampling_locations},
      {"attention_weights", &attention_weights}};
  for (const auto& item : named) {
    TORCH_CHECK(item.second->is_cuda(), "ms_deform_attn: ", item.first, " must be a CUDA tensor");
    TORCH_CHECK(item.second->device() == value.device(), "ms_deform_attn: ", item.first,
                " is on ", item.second->device(), " but value is on ", value.device());
    TORCH_CHECK(item.second->is_contiguous(), "ms_deform_attn: ", item.first,
                " must be contiguous");
  }
  TORCH_CHECK(value.dim() == 4, "ms_deform_attn: value must be (N, S, M, D), got ", value.sizes());
  TORCH_CHECK(sampling_locations.dim() == 6 && sampling_locations.size(5) == 2,
              "ms_deform_attn: sampling_locations must be (N, Lq, M, L, P, 2), got ",
              sampling_locations.sizes());
  TORCH_CHECK(attention_weights.sizes() == sampling_locations.sizes().slice(0, 5),
              "ms_deform_attn: attention_weights ", attention_weights.sizes(),
              " must match sampling_locations ", sampling_locations.sizes(), " without its last dim");
  const int64_t levels = sampling_locations.size(3);
  TORCH_CHECK(spatial_shapes.dim() == 2 && spatial_shapes.size(0) == levels &&
                  spatial_shapes.size(1) == 2,
              "ms_deform_attn: spatial_shapes must be (L, 2) with L = ", levels, ", got ",
              spatial_shapes.sizes());
  TORCH_CHECK(level_start_index.numel() == levels, "ms_deform_attn: level_start_index must have ",
              levels, " entries, got ", level_start_index.numel());
  TORCH_CHECK(spatial_shapes.scalar_type() == at::kLong &&
                  level_start_index.scalar_type() == at::kLong,
              "ms_deform_attn: spatial_shapes and level_start_index must be int64");
  TORCH_CHECK(sampling_locations.size(0) == value.size(0) &&
                  sampling_locations.size(2) == value.size(2),
              "ms_deform_attn: batch or head count of sampling_locations ",
              sampling_locations.sizes(), " differs from value ", value.sizes());
  TORCH_CHECK(attention_weights.scalar_type() == value.scalar_type(),
              "ms_deform_attn: attention_weights dtype ", attention_weights.scalar_type(),
              " must equal value dtype ", value.scalar_type());
  const auto location_type = value.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  TORCH_CHECK(sampling_locations.scalar_type() == location_type,
              "ms_deform_attn: sampling_locations must be ", location_type, " for ",
              value.scalar_type(), " values, got ", sampling_locations.scalar_type());
}

}  // namespace

at::Tensor ms_deform_attn_forward(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                  const at::Tensor& level_start_index,
                                  const at::Tensor& sampling_locations,
                                  const at::Tensor& attention_weights, int64_t im2col_step) {
  TORCH_CHECK(im2col_step > 0, "ms_deform_attn: im2col_step must be positive");
  check_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  const c10::cuda::CUDAGuard device_guard(value.device());
  const int64_t batch = value.size(0), positions = value.size(1), heads = value.size(2),
                channels = value.size(3);
  const int64_t queries = sampling_locations.size(1), levels = sampling_locations.size(3),
                points = sampling_locations.size(4);
  auto output = at::empty({batch, queries, heads * channels}, value.options());
  const int64_t total = output.numel();
  if (total == 0) return output;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::ScalarType::Half, at::ScalarType::BFloat16, value.scalar_type(),
      "ms_deform_attn_forward", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        forward_kernel<scalar_t, acc_t><<<blocks_for(total), kThreadsPerBlock, 0, stream>>>(
            total, value.data_ptr<scalar_t>(), spatial_shapes.data_ptr<int64_t>(),
            level_start_index.data_ptr<int64_t>(), sampling_locations.data_ptr<acc_t>(),
            attention_weights.data_ptr<scalar_t>(), positions, heads, channels, queries, levels,
            points, output.data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return output;
}

std::vector<at::Tensor> ms_deform_attn_backward(const at::Tensor& value,
                                                const at::Tensor& spatial_shapes,
                                                const at::Tensor& level_start_index,
                                                const at::Tensor& sampling_locations,
                                                const at::Tensor& attention_weights,
                                                const at::Tensor& grad_output, int64_t im2col_step) {
  TORCH_CHECK(im2col_step > 0, "ms_deform_attn: im2col_step must be positive");
  check_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  TORCH_CHECK(grad_output.is_cuda() && grad_output.is_contiguous() &&
                  grad_output.scalar_type() == value.scalar_type(),
              "ms_deform_attn: grad_output must be a contiguous CUDA tensor of value's dtype");
  const c10::cuda::CUDAGuard device_guard(value.device());
  const int64_t positions = value.size(1), heads = value.size(2), channels = value.size(3);
  const int64_t queries = sampling_locations.size(1), levels = sampling_locations.size(3),
                points = sampling_locations.size(4);
  const auto accumulate_type = sampling_locations.scalar_type();  // float32, or float64
  auto grad_value = at::zeros(value.sizes(), value.options().dtype(accumulate_type));
  auto grad_locations = at::empty_like(sampling_locations);
  auto grad_weights = at::empty_like(attention_weights);
  const int64_t total = attention_weights.numel();
  if (total > 0) {
    const auto stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::ScalarType::Half, at::ScalarType::BFloat16, value.scalar_type(),
        "ms_deform_attn_backward", [&] {
          using acc_t = at::opmath_type<scalar_t>;
          backward_kernel<scalar_t, acc_t><<<blocks_for(total), kThreadsPerBlock, 0, stream>>>(
              total, value.data_ptr<scalar_t>(), spatial_shapes.data_ptr<int64_t>(),
              level_start_index.data_ptr<int64_t>(), sampling_locations.data_ptr<acc_t>(),
              attention_weights.data_ptr<scalar_t>(), grad_output.data_ptr<scalar_t>(), positions,
              heads, channels, queries, levels, points, grad_value.data_ptr<acc_t>(),
              grad_locations.data_ptr<acc_t>(), grad_weights.data_ptr<scalar_t>());
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
  }
  return {grad_value.to(value.scalar_type()), grad_locations, grad_weights};
}

}  // namespace mqformer_d2
