// Launchers of the CUDA kernels for MLX affine-quantized weights (ops/quantized.h gives the
// format). Plain declarations like launch.h, so host code includes no device code.
#pragma once

#include "ops/cuda/launch.h"

namespace hearth::ops::cuda {

// A quantized [n, k] matrix on the device: packed u32 rows of k * bits / 32 words, scales and
// biases [n, k / group_size] of `scale_elem`, all rows contiguous.
struct QuantMatrix {
  const uint32_t* packed = nullptr;
  const void* scales = nullptr;
  const void* biases = nullptr;
  Elem scale_elem = Elem::f32;
  int bits = 4;
  int group_size = 64;
  int64_t n = 0, k = 0;
};

// MLX's quantize of the rows of w ([n, k], row stride w_stride): `gpu_variant` picks MLX's
// Metal/CUDA rules (group maximum starts at 0, ties away from zero) over its CPU rules.
cudaError_t launch_affine_quantize(const void* w, Elem w_elem, int64_t w_stride, bool gpu_variant,
                                   uint32_t* packed, void* scales, void* biases, Elem scale_elem,
                                   int bits, int group_size, int64_t n, int64_t k,
                                   cudaStream_t stream);

// out[t, :] = dequantized row ids[t] (or row t when ids is null) for t < rows, rounded as MLX's
// dequantize does (product, then sum, each rounded to out's type). With ids, an id outside [0, n)
// leaves its row unwritten and lowers *bad to (position << 32 | uint32 id) when that is smaller,
// as launch_embedding does (so *bad, initially all ones, ends as the first bad position and id).
cudaError_t launch_affine_dequantize(const QuantMatrix& w, const int32_t* ids, int64_t id_stride,
                                     int64_t rows, void* out, Elem out_elem, int64_t out_stride,
                                     unsigned long long* bad, cudaStream_t stream);

// Rows of x up to which the fused-dequant GEMV is used (decode); above, callers dequantize
// tiles and run a GEMM.
inline constexpr int kQuantGemvMaxRows = 8;

// Floats of device scratch launch_quantized_gemv needs for m rows of x and k columns (x in the
// kernels' layout plus its sums over every 16 or 32 columns).
inline int64_t quantized_gemv_scratch_floats(int64_t m, int64_t k) {
  return m * k + m * (k / 16);
}

// out[i, j] = sum_p x[i, p] * w[j, p] (+ bias[j]) for i < m <= kQuantGemvMaxRows, reading each
// packed weight once; f32 products and sums. `scratch`: quantized_gemv_scratch_floats(m, k)
// floats, 16-byte aligned.
cudaError_t launch_quantized_gemv(const void* x, Elem x_elem, int64_t x_stride, int m,
                                  const QuantMatrix& w, const void* bias, Elem bias_elem,
                                  float* scratch, void* out, Elem out_elem, int64_t out_stride,
                                  cudaStream_t stream);

// One product of a grouped quantized GEMV: out[i, n] = sum_p x[i, p] * w[n, p] (+ bias[n]).
struct QuantGemvOut {
  QuantMatrix w;
  const void* bias = nullptr;
  Elem bias_elem = Elem::f32;
  void* out = nullptr;
  Elem out_elem = Elem::f32;
  int64_t out_stride = 0;
};
inline constexpr int kMaxQuantGemvGroups = 4;
struct QuantGemvGroups {
  QuantGemvOut g[kMaxQuantGemvGroups];
  int count = 0;
  int64_t tiles_end[kMaxQuantGemvGroups] = {};  // filled by the launcher
};

// The MatmulPrecision::bf16 GEMV (quantized_mma.cu): 4-bit weights, K a multiple of 128, up to
// kQuantGemvMaxRows rows of x rounded to bf16; code * x products exact, f32 sums.
bool quantized_gemv_bf16_fits(const QuantMatrix& w, int m);
// Bytes of device scratch it needs for m rows of x and k columns (16-byte aligned).
int64_t quantized_gemv_bf16_scratch_bytes(int m, int64_t k);
// The products of `groups` (same x, same K, same scale type) in one launch after one preparation
// of x; with silu_mul, groups are {gate, up} of one shape and group size, and gate's out receives
// silu(gate product) * (up product). Each output equals the single product's bit for bit.
cudaError_t launch_quantized_gemv_bf16(const void* x, Elem x_elem, int64_t x_stride, int m,
                                       int64_t k, QuantGemvGroups groups, bool silu_mul,
                                       void* scratch, cudaStream_t stream);

}  // namespace hearth::ops::cuda
