// Per-element math of multi-scale deformable attention, shared by the CUDA kernels and the CPU
// loops: one definition of the indexing, the bilinear sampling and the gradient formulas, so the
// CPU build (testable on any machine) checks the same code the GPU runs.
//
// Sampling follows F.grid_sample(mode="bilinear", padding_mode="zeros", align_corners=False): a
// normalised location x in [0, 1] maps to pixel coordinate x * W - 0.5, and corners outside the
// level read as zero. Shapes and dtypes: see ms_deform_attn.h.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define MQ_HOST_DEVICE __host__ __device__
#else
#define MQ_HOST_DEVICE
#endif

namespace mqformer_d2 {
namespace math {

// Pointers and sizes of one call. acc_t: float for float/half/bfloat16 values, double for double;
// sampling locations are stored in acc_t.
template <typename scalar_t, typename acc_t>
struct Problem {
  const scalar_t* value;               // (N, S, M, D)
  const int64_t* spatial_shapes;       // (L, 2)
  const int64_t* level_start_index;    // (L,)
  const acc_t* sampling_locations;     // (N, Lq, M, L, P, 2)
  const scalar_t* attention_weights;   // (N, Lq, M, L, P)
  int64_t positions, heads, channels, queries, levels, points;
};

// Where a normalised location falls on an H x W level: the top-left corner (y0, x0) of its 2x2
// neighbourhood, the fractional offsets (ly, lx), and whether any corner can lie inside.
template <typename acc_t>
struct BilinearCell {
  int64_t y0, x0;
  acc_t ly, lx;
  bool inside;

  MQ_HOST_DEVICE BilinearCell(acc_t x, acc_t y, int64_t height, int64_t width) {
    const acc_t h_im = y * static_cast<acc_t>(height) - acc_t(0.5);
    const acc_t w_im = x * static_cast<acc_t>(width) - acc_t(0.5);
    inside = h_im > acc_t(-1) && w_im > acc_t(-1) && h_im < static_cast<acc_t>(height) &&
             w_im < static_cast<acc_t>(width);
    const acc_t y_floor = inside ? floor(h_im) : acc_t(0);  // outside: never used (and no NaN cast)
    const acc_t x_floor = inside ? floor(w_im) : acc_t(0);
    y0 = static_cast<int64_t>(y_floor);
    x0 = static_cast<int64_t>(x_floor);
    ly = h_im - y_floor;
    lx = w_im - x_floor;
  }
};

// Value at (y, x) of one channel of a level, zero outside; `level` points at that channel of
// position 0, and positions are `stride` elements apart.
template <typename scalar_t, typename acc_t>
MQ_HOST_DEVICE acc_t read_or_zero(const scalar_t* level, int64_t y, int64_t x, int64_t height,
                                  int64_t width, int64_t stride) {
  if (y < 0 || x < 0 || y >= height || x >= width) return acc_t(0);
  return static_cast<acc_t>(level[(y * width + x) * stride]);
}

// Adds to a value-gradient entry: atomically on the GPU (threads of different samples meet on
// the same pixels), plainly on the CPU (the caller loops serially).
template <typename acc_t>
MQ_HOST_DEVICE void accumulate(acc_t* target, acc_t amount) {
#if defined(__CUDA_ARCH__)
  atomicAdd(target, amount);
#else
  *target += amount;
#endif
}

template <typename acc_t>
MQ_HOST_DEVICE void scatter_if_inside(acc_t* level_grad, int64_t y, int64_t x, int64_t height,
                                      int64_t width, int64_t stride, acc_t amount) {
  if (y < 0 || x < 0 || y >= height || x >= width) return;
  accumulate(level_grad + (y * width + x) * stride, amount);
}

// Output element `index` enumerating (n, q, m, d) in output order (N, Lq, M * D).
template <typename scalar_t, typename acc_t>
MQ_HOST_DEVICE acc_t forward_element(const Problem<scalar_t, acc_t>& p, int64_t index) {
  const int64_t stride = p.heads * p.channels;
  const int64_t d = index % p.channels;
  const int64_t head_row = index / p.channels;  // (n * Lq + q) * M + m
  const int64_t m = head_row % p.heads;
  const int64_t n = head_row / p.heads / p.queries;
  const scalar_t* batch_value = p.value + n * p.positions * stride + m * p.channels + d;
  int64_t sample = head_row * p.levels * p.points;
  acc_t accumulated = 0;
  for (int64_t l = 0; l < p.levels; ++l) {
    const int64_t height = p.spatial_shapes[2 * l], width = p.spatial_shapes[2 * l + 1];
    const scalar_t* level = batch_value + p.level_start_index[l] * stride;
    for (int64_t k = 0; k < p.points; ++k, ++sample) {
      const BilinearCell<acc_t> c(p.sampling_locations[2 * sample],
                                  p.sampling_locations[2 * sample + 1], height, width);
      if (!c.inside) continue;
      const acc_t hy = 1 - c.ly, hx = 1 - c.lx;
      const acc_t sampled =
          hy * hx * read_or_zero<scalar_t, acc_t>(level, c.y0, c.x0, height, width, stride) +
          hy * c.lx * read_or_zero<scalar_t, acc_t>(level, c.y0, c.x0 + 1, height, width, stride) +
          c.ly * hx * read_or_zero<scalar_t, acc_t>(level, c.y0 + 1, c.x0, height, width, stride) +
          c.ly * c.lx * read_or_zero<scalar_t, acc_t>(level, c.y0 + 1, c.x0 + 1, height, width, stride);
      accumulated += static_cast<acc_t>(p.attention_weights[sample]) * sampled;
    }
  }
  return accumulated;
}

// Gradients of sampling point `sample` enumerating (n, q, m, l, p) in the order of
// attention_weights: writes its location and weight gradients and adds its share of the value
// gradient (grad_value is acc_t, same layout as value).
template <typename scalar_t, typename acc_t>
MQ_HOST_DEVICE void backward_sample(const Problem<scalar_t, acc_t>& p, int64_t sample,
                                    const scalar_t* grad_output, acc_t* grad_value,
                                    acc_t* grad_sampling_locations,
                                    scalar_t* grad_attention_weights) {
  const int64_t stride = p.heads * p.channels;
  const int64_t l = sample / p.points % p.levels;
  const int64_t head_row = sample / p.points / p.levels;  // (n * Lq + q) * M + m
  const int64_t m = head_row % p.heads;
  const int64_t n = head_row / p.heads / p.queries;
  const int64_t height = p.spatial_shapes[2 * l], width = p.spatial_shapes[2 * l + 1];
  const BilinearCell<acc_t> c(p.sampling_locations[2 * sample],
                              p.sampling_locations[2 * sample + 1], height, width);
  acc_t grad_weight = 0, grad_lx = 0, grad_ly = 0;
  if (c.inside) {
    const int64_t offset = (n * p.positions + p.level_start_index[l]) * stride + m * p.channels;
    const scalar_t* grad_row = grad_output + head_row * p.channels;
    const acc_t weight = static_cast<acc_t>(p.attention_weights[sample]);
    const acc_t ly = c.ly, lx = c.lx, hy = 1 - ly, hx = 1 - lx;
    for (int64_t d = 0; d < p.channels; ++d) {
      const scalar_t* channel = p.value + offset + d;
      const acc_t v00 = read_or_zero<scalar_t, acc_t>(channel, c.y0, c.x0, height, width, stride);
      const acc_t v01 = read_or_zero<scalar_t, acc_t>(channel, c.y0, c.x0 + 1, height, width, stride);
      const acc_t v10 = read_or_zero<scalar_t, acc_t>(channel, c.y0 + 1, c.x0, height, width, stride);
      const acc_t v11 = read_or_zero<scalar_t, acc_t>(channel, c.y0 + 1, c.x0 + 1, height, width, stride);
      const acc_t grad = static_cast<acc_t>(grad_row[d]);
      grad_weight += grad * (hy * hx * v00 + hy * lx * v01 + ly * hx * v10 + ly * lx * v11);
      const acc_t weighted = grad * weight;
      // d(sample)/d(lx) and d(sample)/d(ly) of the bilinear interpolation.
      grad_lx += weighted * (hy * (v01 - v00) + ly * (v11 - v10));
      grad_ly += weighted * (hx * (v10 - v00) + lx * (v11 - v01));
      acc_t* channel_grad = grad_value + offset + d;
      scatter_if_inside(channel_grad, c.y0, c.x0, height, width, stride, weighted * hy * hx);
      scatter_if_inside(channel_grad, c.y0, c.x0 + 1, height, width, stride, weighted * hy * lx);
      scatter_if_inside(channel_grad, c.y0 + 1, c.x0, height, width, stride, weighted * ly * hx);
      scatter_if_inside(channel_grad, c.y0 + 1, c.x0 + 1, height, width, stride, weighted * ly * lx);
    }
  }
  grad_attention_weights[sample] = static_cast<scalar_t>(grad_weight);
  // lx = x * W - 0.5 - floor(.), so d(lx)/dx = W; likewise d(ly)/dy = H.
  grad_sampling_locations[2 * sample] = grad_lx * static_cast<acc_t>(width);
  grad_sampling_locations[2 * sample + 1] = grad_ly * static_cast<acc_t>(height);
}

}  // namespace math
}  // namespace mqformer_d2
