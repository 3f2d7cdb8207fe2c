// CPU softmax and log_softmax over the last dimension: max pass, exp-sum pass (vectorized exp,
// see simd.h for its accuracy), normalize pass.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/thread_pool.h"
#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/rows.h"
#include "ops/cpu/simd.h"

namespace hearth::ops::cpu {
namespace {

constexpr int64_t kGrainElements = 16384;  // see norm.cpp

float row_max(const float* x, int64_t n) {
  __m256 m = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
  float mx = hmax(m);
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  return mx;
}

// Elements summed in f32 lanes before the partial sum moves to a double: a vocabulary-sized row
// summed lane by lane in f32 would lose ~1e-5 relative (like torch, which sums in cascades).
constexpr int64_t kSumChunk = 512;

// sum(exp(x - mx)); also stores the exponentials into out when out is not null.
float exp_sum(const float* x, int64_t n, float mx, float* out) {
  __m256 vmx = _mm256_set1_ps(mx);
  double total = 0.0;
  int64_t i = 0;
  while (i + kLanes <= n) {
    __m256 acc = _mm256_setzero_ps();
    int64_t chunk_end = std::min(n, i + kSumChunk);
    for (; i + kLanes <= chunk_end; i += kLanes) {
      __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmx));
      if (out) _mm256_storeu_ps(out + i, e);
      acc = _mm256_add_ps(acc, e);
    }
    total += hsum(acc);
  }
  if (i < n) {
    int rest = int(n - i);
    // Masked-off lanes load 0 and give exp(-mx): mask them out of the sum.
    __m256 e = exp8(_mm256_sub_ps(load_partial(x + i, rest), vmx));
    e = _mm256_and_ps(e, _mm256_castsi256_ps(lane_mask(rest)));
    if (out) store_partial(out + i, e, rest);
    total += hsum(e);
  }
  return float(total);
}

template <bool kLog>
void softmax_rows(const Tensor& x, Tensor& out) {
  Rows xr(x), orow(out);
  const int64_t n = xr.length();
  const float* xb = x.data<float>();
  float* ob = out.data<float>();
  int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(n, 1));
  parallel_for(xr.count(), grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* xp = xb + xr.offset(r);
      float* op = ob + orow.offset(r);
      float mx = row_max(xp, n);
      if constexpr (kLog) {
        float sum = exp_sum(xp, n, mx, nullptr);
        float log_sum = std::log(sum);
        __m256 vmx = _mm256_set1_ps(mx), vls = _mm256_set1_ps(log_sum);
        int64_t i = 0;
        for (; i + kLanes <= n; i += kLanes)
          _mm256_storeu_ps(op + i, _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(xp + i), vmx), vls));
        for (; i < n; ++i) op[i] = (xp[i] - mx) - log_sum;
      } else {
        float sum = exp_sum(xp, n, mx, op);
        __m256 inv = _mm256_set1_ps(1.0f / sum);
        int64_t i = 0;
        for (; i + kLanes <= n; i += kLanes)
          _mm256_storeu_ps(op + i, _mm256_mul_ps(_mm256_loadu_ps(op + i), inv));
        for (; i < n; ++i) op[i] *= 1.0f / sum;
      }
    }
  });
}

}  // namespace

void softmax(const Tensor& x, Tensor& out) {
  softmax_rows<false>(x, out);
}
void log_softmax(const Tensor& x, Tensor& out) {
  softmax_rows<true>(x, out);
}

}  // namespace hearth::ops::cpu
