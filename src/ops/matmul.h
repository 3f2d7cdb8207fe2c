// Linear layer product in HF weight layout: out[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]).
#pragma once

#include "core/tensor.h"

namespace hearth::ops {

// x: f32 [M, K] (rows contiguous, any row stride); w: f32, f16 or bf16 [N, K] contiguous;
// bias: optional [N], any float dtype; out: f32 [M, N] (rows contiguous, any row stride, so a
// column slice of a wider buffer is fine). Accumulates in f32. Few rows (decode, M == 1 or a
// small batch) take the GEMV path (bandwidth-bound); larger M the blocked GEMM path (prefill).
void matmul(const Tensor& x, const Tensor& w, Tensor& out, const Tensor* bias = nullptr);

}  // namespace hearth::ops
