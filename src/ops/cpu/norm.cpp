// CPU rms_norm and add_rms_norm: one pass for the sum of squares (f32 lanes; the residual add
// folded into it), one pass to scale. Rows are independent and split across threads once there is
// enough work to pay for waking them.
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

// rms_norm of the rows of x into out; with kAdd, first x += delta row by row (add_rms_norm). The
// sum has the value ops::add computes (one f32 rounding) and the norm then runs exactly as
// without kAdd, so the fused op equals add followed by rms_norm bit for bit.
template <typename W, bool kAdd>
void rms_norm_rows(const Tensor& x, const Tensor* delta, const Tensor& weight, float eps,
                   Tensor& out) {
  Rows xr(x), outr(out);
  const int64_t h = xr.length();
  float* xbase = const_cast<float*>(x.data<float>());  // written only with kAdd (x is in place)
  float* obase = out.data<float>();
  const W* w = weight.data<W>();
  const Rows dr(kAdd ? *delta : x);
  const float* dbase = kAdd ? delta->data<float>() : nullptr;
  int64_t grain = std::max<int64_t>(1, kRowGrainElements / std::max<int64_t>(h, 1));
  parallel_for(xr.count(), grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* xp = xbase + xr.offset(r);
      float* op = obase + outr.offset(r);
      const float* dp = kAdd ? dbase + dr.offset(r) : nullptr;
      // Loads row elements [i, i + kLanes) (n of them when partial), summed with delta first.
      auto load_x = [&](int64_t i, int n) {
        __m256 a = n == kLanes ? _mm256_loadu_ps(xp + i) : load_partial(xp + i, n);
        if constexpr (kAdd) {
          a = _mm256_add_ps(a, n == kLanes ? _mm256_loadu_ps(dp + i) : load_partial(dp + i, n));
          if (n == kLanes)
            _mm256_storeu_ps(xp + i, a);
          else
            store_partial(xp + i, a, n);
        }
        return a;
      };
      __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
      int64_t i = 0;
      for (; i + 2 * kLanes <= h; i += 2 * kLanes) {
        __m256 a = load_x(i, kLanes), b = load_x(i + kLanes, kLanes);
        acc0 = _mm256_fmadd_ps(a, a, acc0);
        acc1 = _mm256_fmadd_ps(b, b, acc1);
      }
      for (; i < h; i += kLanes) {
        __m256 a = load_x(i, i + kLanes <= h ? kLanes : int(h - i));
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

template <bool kAdd>
void rms_norm_any(const Tensor& x, const Tensor* delta, const Tensor& weight, float eps,
                  Tensor& out) {
  switch (weight.dtype()) {
    case DType::f32:
      return rms_norm_rows<float, kAdd>(x, delta, weight, eps, out);
    case DType::f16:
      return rms_norm_rows<F16, kAdd>(x, delta, weight, eps, out);
    case DType::bf16:
      return rms_norm_rows<BF16, kAdd>(x, delta, weight, eps, out);
    default:
      HEARTH_CHECK(false, "rms_norm weight {}", weight.describe());
  }
}

}  // namespace

void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  rms_norm_any<false>(x, nullptr, weight, eps, out);
}

void add_rms_norm(Tensor& x, const Tensor& delta, const Tensor& weight, float eps, Tensor& normed) {
  rms_norm_any<true>(x, &delta, weight, eps, normed);
}

}  // namespace hearth::ops::cpu
