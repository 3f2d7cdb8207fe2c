// CPU matmul entry: resolves operands, widens the bias once, and picks GEMV or GEMM.
#include <algorithm>
#include <cstdlib>
#include <vector>

#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/matmul_internal.h"

namespace hearth::ops::cpu {

// Rows of x up to which the GEMV path is used (see kGemvMaxRows). HEARTH_CPU_GEMV_MAX_ROWS
// lowers it (0 sends every product through the GEMM, to bisect regressions).
int64_t gemv_max_rows() {
  static const int64_t value = [] {
    if (const char* env = std::getenv("HEARTH_CPU_GEMV_MAX_ROWS")) {
      long v = std::strtol(env, nullptr, 10);
      return int64_t(std::clamp<long>(v, 0, kGemvMaxRows));
    }
    return kGemvMaxRows;
  }();
  return value;
}

void matmul(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
  MatmulArgs a;
  a.m = x.dim(0);
  a.k = x.dim(1);
  a.n = w.dim(0);
  if (a.m == 0 || a.n == 0) return;
  a.x = x.data<float>();
  a.x_stride = x.stride(0);
  a.w = w.raw_data();
  a.w_dtype = w.dtype();
  a.out = out.data<float>();
  a.out_stride = out.stride(0);
  std::vector<float> bias_f32;
  if (bias) {
    bias_f32.resize(size_t(a.n));
    for (int64_t j = 0; j < a.n; ++j)
      bias_f32[size_t(j)] = load_as_f32(static_cast<const char*>(bias->raw_data()) +
                                            j * bias->stride(0) * int64_t(bias->element_size()),
                                        bias->dtype());
    a.bias = bias_f32.data();
  }
  if (a.m <= gemv_max_rows())
    gemv(a);
  else
    gemm(a);
}

}  // namespace hearth::ops::cpu
