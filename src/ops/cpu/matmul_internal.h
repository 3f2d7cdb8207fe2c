// Shared between the CPU matmul files: the two kernel families behind ops::matmul and the
// heuristic that picks one.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace hearth::ops::cpu {

// Operands of out[m, n] = sum_k x[m, k] * w[n, k] + bias[n], as raw pointers and row strides.
struct MatmulArgs {
  const float* x = nullptr;
  int64_t x_stride = 0;
  const void* w = nullptr;  // [N, K] contiguous, dtype w_dtype
  DType w_dtype = DType::f32;
  const float* bias = nullptr;  // [N] f32 or null
  float* out = nullptr;
  int64_t out_stride = 0;
  int64_t m = 0, n = 0, k = 0;
};

// Bandwidth-bound path for few rows of x: each weight row is read once, converted in registers
// and dotted with up to kGemvMaxRows rows of x. Parallel over N.
inline constexpr int64_t kGemvMaxRows = 4;
void gemv(const MatmulArgs& args);

// Compute-bound path: weight panels packed (and widened) to f32 once per tile, register-blocked
// outer-product micro-kernel. Parallel over N (and M) tiles.
void gemm(const MatmulArgs& args);

}  // namespace hearth::ops::cpu
