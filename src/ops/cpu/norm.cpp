// CPU rms_norm: one pass for the sum of squares (f32 lanes), one pass to scale. Rows are
// independent and split across threads once there is enough work to pay for waking them.
#include <cmath>

#include "core/thread_pool.h"
#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/rows.h"
#include "ops/cpu/simd.h"

namespace hearth::ops::cpu {
namespace {

// Elements per thread below which a row op stays on the calling thread (2-core Zen dev VM: a
// pool wake-up costs ~2-5 us, about what 16K elements of streaming work take).
constexpr int64_t kRowGrainElements = 16384;

template <typename W>
void rms_norm_rows(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  Rows xr(x), outr(out);
  const int64_t h = xr.length();
  const float* xbase = x.data<float>();
  float* obase = out.data<float>();
  const W* w = weight.data<W>();
  int64_t grain = std::max<int64_t>(1, kRowGrainElements / std::max<int64_t>(h, 1));
  parallel_for(xr.count(), grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* xp = xbase + xr.offset(r);
      float* op = obase + outr.offset(r);
      __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
      int64_t i = 0;
      for (; i + 2 * kLanes <= h; i += 2 * kLanes) {
        __m256 a = _mm256_loadu_ps(xp + i), b = _mm256_loadu_ps(xp + i + kLanes);
        acc0 = _mm256_fmadd_ps(a, a, acc0);
        acc1 = _mm256_fmadd_ps(b, b, acc1);
      }
      for (; i < h; i += kLanes) {
        __m256 a = i + kLanes <= h ? _mm256_loadu_ps(xp + i) : load_partial(xp + i, int(h - i));
        acc0 = _mm256_fmadd_ps(a, a, acc0);
      }
      float mean = hsum(_mm256_add_ps(acc0, acc1)) / float(h);
      __m256 inv = _mm256_set1_ps(float(1.0 / std::sqrt(double(mean) + double(eps))));
      for (i = 0; i + kLanes <= h; i += kLanes)
        _mm256_storeu_ps(op + i,
                         _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xp + i), inv), load8(w + i)));
      if (i < h) {
        int n = int(h - i);
        store_partial(
            op + i,
            _mm256_mul_ps(_mm256_mul_ps(load_partial(xp + i, n), inv), load_partial(w + i, n)), n);
      }
    }
  });
}

}  // namespace

void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  switch (weight.dtype()) {
    case DType::f32:
      return rms_norm_rows<float>(x, weight, eps, out);
    case DType::f16:
      return rms_norm_rows<F16>(x, weight, eps, out);
    case DType::bf16:
      return rms_norm_rows<BF16>(x, weight, eps, out);
    default:
      HEARTH_CHECK(false, "rms_norm weight {}", weight.describe());
  }
}

}  // namespace hearth::ops::cpu
