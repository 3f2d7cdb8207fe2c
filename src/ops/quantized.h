// MLX's affine quantization on the device: quantize/dequantize rows, and products with quantized
// weights (decode GEMV, prefill GEMM) and quantized embedding gathers.
//
// Format (MLX `mx.quantize(w, group_size, bits)`, mode "affine"): a [N, K] matrix becomes
//   packed: u32 [N, K * bits / 32]  — each row a little-endian bit stream of K unsigned `bits`-wide
//                                     codes (for bits 3/5/6 codes straddle byte boundaries)
//   scales: [N, K / group_size]      — f32, f16 or bf16 (the dtype of the original weights)
//   biases: [N, K / group_size]      — same dtype
// and w[n, k] = scales[n, k / gs] * code[n, k] + biases[n, k / gs].
#pragma once

#include "core/tensor.h"

namespace hearth::ops {

inline constexpr int kQuantBits[] = {2, 3, 4, 5, 6, 8};
inline constexpr int kQuantGroupSizes[] = {32, 64, 128};

struct QuantizedWeight {
  Tensor packed;  // u32 [N, K * bits / 32]
  Tensor scales;  // [N, K / group_size]
  Tensor biases;  // [N, K / group_size]
  int bits = 4;
  int group_size = 64;

  int64_t rows() const { return packed.dim(0); }
  int64_t cols() const { return packed.dim(1) * 32 / bits; }  // K
  // Throws invalid_argument naming `what` when shapes/dtypes/bits/group size do not fit together.
  void validate(const char* what) const;
};

// Quantizes the rows of w ([N, K], f32/f16/bf16, K a multiple of group_size) exactly as MLX does
// (same rounding, same scale/bias edge cases); scales/biases get `scale_dtype`.
QuantizedWeight affine_quantize(const Tensor& w, int bits, int group_size, DType scale_dtype);
// out [N, K] (f32/f16/bf16) = scales * codes + biases, computed in f32 then rounded to out's dtype.
void affine_dequantize(const QuantizedWeight& w, Tensor& out);

// out[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]) with w quantized. x: f32 [M, K] (rows
// contiguous); out: f32 [M, N] (rows contiguous). f32 accumulation. Few rows: fused-dequant GEMV
// (bandwidth-bound decode); more rows: a GEMM path.
void quantized_matmul(const Tensor& x, const QuantizedWeight& w, Tensor& out,
                      const Tensor* bias = nullptr);

// out[t, :] = dequantized row ids[t] of the table (f32 [T, K]); ids outside [0, N) are
// invalid_argument errors naming the id.
void quantized_embedding(const QuantizedWeight& table, const Tensor& ids, Tensor& out);

}  // namespace hearth::ops
