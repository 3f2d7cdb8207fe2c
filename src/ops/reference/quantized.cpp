// Reference MLX affine quantization: one group and one code at a time, written from MLX's
// quantize (mlx/ops.cpp graph, mlx/backend/cpu/quantized.cpp) and its Metal/CUDA kernels; the
// algorithm is spelled out in docs/ops.md. Every step is a single f32 operation, like MLX's, so
// this file is built with -ffp-contract=off (no a * b + c fused into one rounding).
#include <cmath>
#include <cstring>
#include <limits>

#include "ops/reference/reference.h"

namespace hearth::ops::reference {
namespace {

// f32 rounded to `dtype` (nearest even) and back.
float round_to(float v, DType dtype) {
  switch (dtype) {
    case DType::f16:
      return f16_to_f32(f32_to_f16(v));
    case DType::bf16:
      return bf16_to_f32(f32_to_bf16(v));
    default:
      return v;
  }
}

uint8_t* row_bytes(const QuantizedWeight& w, int64_t row) {
  return static_cast<uint8_t*>(w.packed.raw_data()) + row * w.packed.dim(1) * 4;
}

void put_code(const QuantizedWeight& w, int64_t row, int64_t col, uint32_t code) {
  uint8_t* bytes = row_bytes(w, row);
  for (int b = 0; b < w.bits; ++b) {
    int64_t bit = col * w.bits + b;
    if ((code >> b) & 1u) bytes[bit / 8] |= uint8_t(1u << (bit % 8));
  }
}

}  // namespace

uint32_t quantized_code(const QuantizedWeight& w, int64_t row, int64_t col) {
  const uint8_t* bytes = row_bytes(w, row);
  uint32_t code = 0;
  for (int b = 0; b < w.bits; ++b) {
    int64_t bit = col * w.bits + b;
    code |= uint32_t((bytes[bit / 8] >> (bit % 8)) & 1u) << b;
  }
  return code;
}

QuantizedWeight affine_quantize(const Tensor& w, int bits, int group_size, DType scale_dtype,
                                MlxQuantizer variant) {
  const int64_t n = w.dim(0), k = w.dim(1), groups = k / group_size;
  QuantizedWeight q;
  q.bits = bits;
  q.group_size = group_size;
  q.packed = Tensor::zeros({n, k * bits / 32}, DType::u32);
  q.scales = Tensor::empty({n, groups}, scale_dtype);
  q.biases = Tensor::empty({n, groups}, scale_dtype);
  const bool gpu = variant == MlxQuantizer::gpu;
  const float n_bins = float((1 << bits) - 1);
  const float eps = 1e-7f;
  // Metal and CUDA round halfway cases away from zero (round); MLX's CPU path uses rint.
  auto round_int = [gpu](float v) { return gpu ? std::round(v) : std::rint(v); };
  for (int64_t row = 0; row < n; ++row) {
    for (int64_t g = 0; g < groups; ++g) {
      float w_min = std::numeric_limits<float>::infinity();
      float w_max = gpu ? 0.0f : -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < group_size; ++j) {
        float v = float(get(w, {row, g * group_size + j}));
        w_min = std::min(w_min, v);
        w_max = std::max(w_max, v);
      }
      // The end of larger magnitude (`edge`) is represented exactly: the scale is chosen so that
      // edge / scale is a whole number of steps, and then 0 is a code too.
      const bool min_side = std::abs(w_min) > std::abs(w_max);
      float scale = std::max((w_max - w_min) / n_bins, eps);
      if (!min_side) scale = -scale;
      const float edge = min_side ? w_min : w_max;
      const float q0 = round_int(edge / scale);
      float bias = 0.0f;
      if (q0 != 0.0f) {
        scale = edge / q0;
        bias = edge;
      }
      for (int64_t j = 0; j < group_size; ++j) {
        const int64_t col = g * group_size + j;
        float v = float(get(w, {row, col}));
        float c = round_int((v - bias) / scale);
        c = std::min(std::max(c, 0.0f), n_bins);
        put_code(q, row, col, uint32_t(c));
      }
      // Scales and biases are rounded to their dtype only after the codes used the f32 values.
      set(q.scales, {row, g}, round_to(scale, scale_dtype));
      set(q.biases, {row, g}, round_to(bias, scale_dtype));
    }
  }
  return q;
}

void affine_dequantize(const QuantizedWeight& w, Tensor& out) {
  const DType t = out.dtype();
  for (int64_t row = 0; row < w.rows(); ++row) {
    for (int64_t col = 0; col < w.cols(); ++col) {
      const float s = float(get(w.scales, {row, col / w.group_size}));
      const float b = float(get(w.biases, {row, col / w.group_size}));
      const float code = float(quantized_code(w, row, col));
      // MLX: multiply(codes, scales) then add(., biases), each an array of out's dtype.
      const float product = round_to(code * s, t);
      set(out, {row, col}, round_to(product + b, t));
    }
  }
}

void quantized_matmul(const Tensor& x, const QuantizedWeight& w, Tensor& out, const Tensor* bias) {
  Tensor dense = Tensor::empty({w.rows(), w.cols()}, DType::f32);
  reference::affine_dequantize(w, dense);
  matmul(x, dense, out, bias);
}

void quantized_embedding(const QuantizedWeight& table, const Tensor& ids, Tensor& out) {
  Tensor dense = Tensor::empty({table.rows(), table.cols()}, DType::f32);
  reference::affine_dequantize(table, dense);
  embedding(dense, ids, out);
}

}  // namespace hearth::ops::reference
