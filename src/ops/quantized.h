// MLX's affine quantization on the device: quantize/dequantize rows, and products with quantized
// weights (decode GEMV, prefill GEMM) and quantized embedding gathers.
//
// Format (MLX `mx.quantize(w, group_size, bits)`, mode "affine"): a [N, K] matrix becomes
//   packed: u32 [N, K * bits / 32]  — each row a little-endian bit stream of K unsigned `bits`-wide
//                                     codes (for bits 3/5/6 codes straddle byte boundaries)
//   scales: [N, K / group_size]      — f32, f16 or bf16 (the dtype of the original weights)
//   biases: [N, K / group_size]      — same dtype
// and w[n, k] = scales[n, k / gs] * code[n, k] + biases[n, k / gs].
// The algorithm, its edge cases and where MLX's own backends disagree: docs/ops.md.
#pragma once

#include <span>

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

// MLX quantizes with one algorithm but two implementations that differ in two edge cases
// (docs/ops.md): its graph definition and CPU backend (`cpu`: groups use their own min and max,
// ties round to even) and its Metal/CUDA kernels (`gpu`: the group maximum starts at 0, so a
// group of negative values keeps 0 in its range, and ties round away from zero). Files written
// by mlx_lm.convert on Apple silicon come from the `gpu` kernels.
enum class MlxQuantizer { cpu, gpu };

// Quantizes the rows of w ([N, K], f32/f16/bf16, K a multiple of group_size) exactly as MLX does
// (same f32 arithmetic, rounding and scale/bias edge cases); scales/biases get `scale_dtype`
// (MLX uses w's dtype), rounded to nearest even from the f32 values the codes were computed with.
QuantizedWeight affine_quantize(const Tensor& w, int bits, int group_size, DType scale_dtype,
                                MlxQuantizer variant = MlxQuantizer::cpu);
// out [N, K] (f32/f16/bf16) = scales * codes + biases as MLX's dequantize computes it: the
// product, then the sum, each in f32 and rounded to out's dtype (for out's dtype equal to the
// scales', bit-identical to mx.dequantize on the CPU).
void affine_dequantize(const QuantizedWeight& w, Tensor& out);

// out[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]) with w quantized. x: f32 [M, K] (rows
// contiguous); out: f32 [M, N] (rows contiguous). f32 accumulation. Few rows: fused-dequant GEMV
// (bandwidth-bound decode); more rows: a GEMM path.
void quantized_matmul(const Tensor& x, const QuantizedWeight& w, Tensor& out,
                      const Tensor* bias = nullptr);

// One product of quantized_matmul_grouped: out = x . w^T (+ bias), as in quantized_matmul.
struct QuantizedMatmulGroup {
  const QuantizedWeight* w = nullptr;
  const Tensor* bias = nullptr;  // optional
  Tensor* out = nullptr;
};
inline constexpr int kMaxQuantizedMatmulGroups = 4;

// Several quantized products of the same x (q, k and v projections), each output as
// quantized_matmul would write it, bit for bit. On CUDA under MatmulPrecision::bf16 the 4-bit
// GEMV runs them in one launch (ops/precision.h); elsewhere one after another.
void quantized_matmul_grouped(const Tensor& x, std::span<const QuantizedMatmulGroup> groups);

// out = silu(x . w_gate^T + gate_bias) * (x . w_up^T + up_bias) with quantized weights, equal bit
// for bit to quantized_matmul(gate), quantized_matmul(up) into tensors of out's dtype, silu_mul
// on the same backend (one launch in the CUDA 4-bit GEMV, as for quantized_matmul_grouped).
void quantized_matmul_silu_mul(const Tensor& x, const QuantizedWeight& w_gate,
                               const QuantizedWeight& w_up, Tensor& out,
                               const Tensor* gate_bias = nullptr, const Tensor* up_bias = nullptr);

// out[t, :] = dequantized row ids[t] of the table (f32 [T, K], rows contiguous; the values of
// affine_dequantize into f32); ids outside [0, N) are invalid_argument errors naming the id.
void quantized_embedding(const QuantizedWeight& table, const Tensor& ids, Tensor& out);

}  // namespace hearth::ops
