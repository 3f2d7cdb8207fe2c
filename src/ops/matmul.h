// Linear layer products in HF weight layout: out[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]), and
// the fused forms a decoder layer uses (q/k/v in one launch, gate/up with SiLU·mul).
#pragma once

#include <span>

#include "core/tensor.h"

namespace hearth::ops {

// x: f32 [M, K] (rows contiguous, any row stride); w: f32, f16 or bf16 [N, K] contiguous;
// bias: optional [N], any float dtype; out: f32 [M, N] (rows contiguous, any row stride, so a
// column slice of a wider buffer is fine). Accumulates in f32. Few rows (decode, M == 1 or a
// small batch) take the GEMV path (bandwidth-bound); larger M the blocked GEMM path (prefill).
void matmul(const Tensor& x, const Tensor& w, Tensor& out, const Tensor* bias = nullptr);

// One product of matmul_grouped: out = x . w^T (+ bias), shapes and dtypes as in matmul.
struct MatmulGroup {
  const Tensor* w = nullptr;
  const Tensor* bias = nullptr;  // optional
  Tensor* out = nullptr;
};
inline constexpr int kMaxMatmulGroups = 4;

// Several products of the same x (q, k and v projections): 1 to kMaxMatmulGroups weights with the
// same K and the same dtype; each output as matmul would write it, bit for bit. On CUDA, few rows
// run one GEMV launch whose blocks span the concatenated output columns (the small k/v products
// alone leave most SMs idle); on the CPU, and for many rows, the products run one after another.
void matmul_grouped(const Tensor& x, std::span<const MatmulGroup> groups);

// out = silu(x . w_gate^T + gate_bias) * (x . w_up^T + up_bias): the gate and up projections of a
// SwiGLU MLP and the activation. w_gate, w_up: [N, K] of one dtype; out: [M, N] (rows
// contiguous), f32 or bf16. Equal bit for bit to matmul(x, w_gate) -> g, matmul(x, w_up) -> u,
// silu_mul(g, u, out) on the same backend with g and u of out's dtype (a bf16 out rounds both
// products to bf16 first, as PyTorch computes a bf16 model's MLP): the fused CUDA GEMV (M <= 8)
// computes each dot product in the same order as the matmul GEMV, rounds it as matmul stores it
// and applies the activation with the same f32 expression; other cases run that sequence.
void matmul_silu_mul(const Tensor& x, const Tensor& w_gate, const Tensor& w_up, Tensor& out,
                     const Tensor* gate_bias = nullptr, const Tensor* up_bias = nullptr);

}  // namespace hearth::ops
