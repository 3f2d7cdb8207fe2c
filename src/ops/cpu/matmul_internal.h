// Shared between the CPU matmul files: the two kernel families behind ops::matmul and the
// heuristic that picks one.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>

#include "core/storage.h"
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
// and dotted with up to kGemvMaxRows rows of x (4 at a time, the weight tile reused from L1).
// Parallel over N. For small M it beats the GEMM, whose packing then costs more than the math
// (2-core Zen 4 dev VM, one thread, 32 x bf16 2048x2048 in turn, GB/s of weights, GEMV vs GEMM:
// M = 4: 8.8 vs 5.2; 8: 6.2 vs 4.2; 16: 4.2 vs 3.3; 32: 2.4 vs 2.1; f32 crosses near M = 24).
inline constexpr int64_t kGemvMaxRows = 16;
void gemv(const MatmulArgs& args);

// Compute-bound path: weight panels packed (and widened) to f32 once per tile, register-blocked
// outer-product micro-kernel. Parallel over N (and M) tiles.
void gemm(const MatmulArgs& args);

// The GEMM over weights in any storage: `pack` fills panel[kk * 16 + j] = w[n0 + j, k0 + kk] as
// f32 for j < rows (<= 16) and kk < kc, and 0 for j >= rows (quantized weights dequantize there).
// args.w and args.w_dtype are not read; K chunks start at multiples of 256.
using PackPanelFn = void (*)(const void* ctx, int64_t n0, int64_t rows, int64_t k0, int64_t kc,
                             float* panel);
void gemm_packed(const MatmulArgs& args, PackPanelFn pack, const void* ctx);

// How a GEMM splits into tasks: blocks of nc columns (a multiple of nr, at most nc_max), enough
// for every thread to take several (load balance on a shared machine); when N gives too few, M
// splits too, into m_split ranges of m_per rows (a multiple of mr). Task t covers columns
// [(t / m_split) * nc, +nc) and rows [(t % m_split) * m_per, +m_per).
struct GemmTasks {
  int64_t nc, n_blocks, m_split, m_per;
  int64_t count() const { return n_blocks * m_split; }
  // Task t's columns [n0, n1) and rows [m0, m1) of an m x n product.
  struct Range {
    int64_t n0, n1, m0, m1;
  };
  Range range(int64_t t, int64_t m, int64_t n) const {
    const int64_t n0 = (t / m_split) * nc, m0 = (t % m_split) * m_per;
    return {n0, std::min(n, n0 + nc), m0, std::min(m, m0 + m_per)};
  }
};
GemmTasks plan_gemm_tasks(int64_t m, int64_t n, int64_t mr, int64_t nr, int64_t nc_max);

// Scratch memory of n T, 64-byte aligned (aligned_host_alloc), freed with its owner: packed
// panels and rounded x rows of the kernels. Default-constructed: empty.
template <typename T>
struct AlignedArray {
  AlignedArray() = default;
  explicit AlignedArray(size_t n) : p(static_cast<T*>(aligned_host_alloc(n * sizeof(T)))) {}
  ~AlignedArray() { aligned_host_free(p); }
  AlignedArray(AlignedArray&& o) noexcept : p(std::exchange(o.p, nullptr)) {}
  AlignedArray& operator=(AlignedArray&& o) noexcept {
    std::swap(p, o.p);
    return *this;
  }
  T* p = nullptr;
};

// Rows of x up to which products take the GEMV path: kGemvMaxRows, or less when
// HEARTH_CPU_GEMV_MAX_ROWS says so (0 sends every product through the GEMM, to bisect).
int64_t gemv_max_rows();

}  // namespace hearth::ops::cpu
