// CPU silu_mul and add: streaming elementwise loops, rows split across threads.
#include "core/thread_pool.h"
#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/rows.h"
#include "ops/cpu/simd.h"

namespace hearth::ops::cpu {
namespace {

// Elements per thread below which the op stays on the calling thread (see norm.cpp).
constexpr int64_t kGrainElements = 16384;

inline __m256 silu_times(__m256 g, __m256 u) {
  // silu(g) = g / (1 + exp(-g)), as torch computes it.
  __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

}  // namespace

void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) {
  Rows gr(gate), ur(up), orow(out);
  const int64_t n = gr.length();
  const float* g = gate.data<float>();
  const float* u = up.data<float>();
  float* o = out.data<float>();
  int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(n, 1));
  parallel_for(gr.count(), grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* gp = g + gr.offset(r);
      const float* up_ = u + ur.offset(r);
      float* op = o + orow.offset(r);
      int64_t i = 0;
      for (; i + kLanes <= n; i += kLanes)
        _mm256_storeu_ps(op + i, silu_times(_mm256_loadu_ps(gp + i), _mm256_loadu_ps(up_ + i)));
      if (i < n) {
        int rest = int(n - i);
        store_partial(op + i, silu_times(load_partial(gp + i, rest), load_partial(up_ + i, rest)),
                      rest);
      }
    }
  });
}

void add(const Tensor& a, const Tensor& b, Tensor& out) {
  const int64_t n = a.numel();
  const float* ap = a.data<float>();
  const float* bp = b.data<float>();
  float* op = out.data<float>();
  parallel_for(n, kGrainElements, [&](int64_t begin, int64_t end) {
    int64_t i = begin;
    for (; i + kLanes <= end; i += kLanes)
      _mm256_storeu_ps(op + i, _mm256_add_ps(_mm256_loadu_ps(ap + i), _mm256_loadu_ps(bp + i)));
    for (; i < end; ++i) op[i] = ap[i] + bp[i];
  });
}

}  // namespace hearth::ops::cpu
