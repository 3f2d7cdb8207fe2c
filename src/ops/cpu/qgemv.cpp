// CPU GEMV with MLX affine-quantized weights, for decode (M <= kGemvMaxRows rows of x).
//
// Decode streams every weight once per token, so like the dense GEMV (gemv.cpp,
// docs/perf/cpu_decode.md) each thread walks a contiguous range of weight rows one row after the
// other: one sequential stream of packed codes per thread. The codes are unpacked in registers and
// the affine map is folded per group,
//   sum_k x_k (s q_k + b) = s * dot(x_g, q_g) + b * sum(x_g),
// so the inner loop is convert + FMA only; the group sums of x are computed once per call and the
// b terms of a row are one short dot product over its groups.
//
// 4 bits: bytes are widened to 32-bit lanes (vpmovzxbd, 16 codes per 8 bytes) and split into low
// and high nibbles; rather than re-interleave the nibbles, x is permuted once per call into the
// same order (per 16 codes: the 8 even elements, then the 8 odd ones). 8 bits: bytes widen straight
// to lanes. 2/3/5/6 bits: the generic 8-code unpack (quantized_internal.h: broadcast, per-lane
// shift, mask), slower but vectorized.
//
// On two Zen cores the 4-bit product is bound by instruction throughput, not memory: ~0.5 vector
// uops per code (widen, shift, 2 converts, 2 FMAs per 16 codes, plus the per-group scale) against
// ~3 sustained per cycle (docs/perf/cpu_ops.md).
#include <algorithm>
#include <cstdlib>
#include <vector>

#include "core/thread_pool.h"
#include "ops/cpu/quantized_internal.h"

namespace hearth::ops::cpu {
namespace {

// Packed bytes per task below which a product is not split further (a pool wake-up costs about as
// much as streaming 64 KiB on the 2-core Zen dev VM; as in gemv.cpp).
constexpr int64_t kQGemvMinBytesPerTask = 64 * 1024;
// Tasks per thread, claimed dynamically: a thread that loses its core for a while on the shared
// machine does not hold the others up.
constexpr int64_t kTasksPerThread = 8;
// x rows handled together per weight row: 4 keeps 2 accumulators per x row plus the unpacked codes
// in the 16 ymm registers; more rows re-read the weight row from L1.
constexpr int kRowsTogether = 4;

// 4 bits, the default: the low nibble is not masked out. A byte b = lo + 16 hi is converted whole,
// and x is pre-combined per byte so that x_even * b + (x_odd - 16 x_even) * hi = x_even * lo +
// x_odd * hi: one integer op fewer per 16 codes (~7% more codes per second from L2 on the Zen 4
// dev VM, dev/kernels/qgemv_q4.cpp), at the cost of ~16x the rounding of a product term (the
// (x_odd - 16 x_even) * hi terms are up to 16x larger than the result's terms): normalized error
// 1.8e-6 instead of 3.8e-7 in tests/ops/quantized_test.cpp. HEARTH_CPU_Q4_EXACT=1 masks the
// nibble instead (exact products, to bisect).
const bool kByteTrick = [] {
  const char* env = std::getenv("HEARTH_CPU_Q4_EXACT");
  return !(env && env[0] == '1');
}();

struct GemvCtx {
  const MatmulArgs* a;
  const QuantView* w;
  const float* xs;    // x rows as the kernel reads them (4 bits: permuted), row stride k
  const float* xsum;  // [m, groups]: sum of x over each group
};

// sum_g b_g * xsum_g over one weight row's groups.
template <typename S>
inline float bias_terms(const S* b, const float* xsum, int64_t groups) {
  __m256 acc = _mm256_setzero_ps();
  int64_t g = 0;
  for (; g + kLanes <= groups; g += kLanes)
    acc = _mm256_fmadd_ps(load8(b + g), _mm256_loadu_ps(xsum + g), acc);
  float sum = hsum(acc);
  for (; g < groups; ++g) sum += scalar_f32(b, g) * xsum[g];
  return sum;
}

template <typename S, int kM>
inline void finish_row(const GemvCtx& c, int64_t n, int64_t m0, const __m256 (&total)[kM]) {
  const MatmulArgs& a = *c.a;
  const QuantView& w = *c.w;
  const S* b = static_cast<const S*>(w.biases) + n * w.groups;
  for (int i = 0; i < kM; ++i)
    a.out[(m0 + i) * a.out_stride + n] = hsum(total[i]) +
                                         bias_terms(b, c.xsum + (m0 + i) * w.groups, w.groups) +
                                         (a.bias ? a.bias[n] : 0.0f);
}

// With one x row, the FMA latency (4 cycles on Zen) would bound a single chain per lane group to 8
// codes per 4 cycles; kChains independent accumulators per x row keep the FMA units fed.
template <int kM>
constexpr int kChains = kM == 1 ? 2 : 1;

// Weight row n against x rows m0 .. m0 + kM - 1, 4-bit codes, permuted x.
template <typename S, int kM>
inline void row_q4(const GemvCtx& c, int64_t n, int64_t m0) {
  constexpr int kU = kChains<kM>;
  const QuantView& w = *c.w;
  const uint8_t* row = w.row(n);
  const S* scales = static_cast<const S*>(w.scales) + n * w.groups;
  const int64_t chunks = w.group_size / 16;  // 16 codes = 8 bytes; 2, 4 or 8 per group
  const __m256i low4 = _mm256_set1_epi32(0xf);
  const float* xr[kM];
  for (int i = 0; i < kM; ++i) xr[i] = c.xs + (m0 + i) * w.k;
  __m256 total[kM];
  for (int i = 0; i < kM; ++i) total[i] = _mm256_setzero_ps();
  for (int64_t g = 0; g < w.groups; ++g) {
    __m256 acc_lo[kU][kM], acc_hi[kU][kM];
    for (int u = 0; u < kU; ++u)
      for (int i = 0; i < kM; ++i) acc_lo[u][i] = acc_hi[u][i] = _mm256_setzero_ps();
    const uint8_t* p = row + g * (w.group_size / 2);
    const int64_t x0 = g * w.group_size;
    for (int64_t ch = 0; ch < chunks; ch += kU) {
      for (int u = 0; u < kU; ++u) {
        const __m256i bytes = _mm256_cvtepu8_epi32(
            _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + (ch + u) * 8)));
        const __m256 lo = _mm256_cvtepi32_ps(kByteTrick ? bytes : _mm256_and_si256(bytes, low4));
        const __m256 hi = _mm256_cvtepi32_ps(_mm256_srli_epi32(bytes, 4));
        for (int i = 0; i < kM; ++i) {
          const float* xp = xr[i] + x0 + (ch + u) * 16;
          acc_lo[u][i] = _mm256_fmadd_ps(lo, _mm256_loadu_ps(xp), acc_lo[u][i]);
          acc_hi[u][i] = _mm256_fmadd_ps(hi, _mm256_loadu_ps(xp + 8), acc_hi[u][i]);
        }
      }
    }
    const __m256 s = _mm256_set1_ps(scalar_f32(scales, g));
    for (int i = 0; i < kM; ++i) {
      __m256 sum = _mm256_add_ps(acc_lo[0][i], acc_hi[0][i]);
      for (int u = 1; u < kU; ++u)
        sum = _mm256_add_ps(sum, _mm256_add_ps(acc_lo[u][i], acc_hi[u][i]));
      total[i] = _mm256_fmadd_ps(s, sum, total[i]);
    }
  }
  finish_row<S, kM>(c, n, m0, total);
}

// Weight row n against x rows m0 .. m0 + kM - 1, any width, codes in natural order.
template <typename S, int kBits, int kM>
inline void row_natural(const GemvCtx& c, int64_t n, int64_t m0) {
  constexpr int kU = 2 * kChains<kM>;  // accumulators per x row (chunks per group: 4, 8 or 16)
  const QuantView& w = *c.w;
  const uint8_t* row = w.row(n);
  const S* scales = static_cast<const S*>(w.scales) + n * w.groups;
  const int64_t chunks = w.group_size / kLanes;
  const float* xr[kM];
  for (int i = 0; i < kM; ++i) xr[i] = c.xs + (m0 + i) * c.a->x_stride;
  __m256 total[kM];
  for (int i = 0; i < kM; ++i) total[i] = _mm256_setzero_ps();
  for (int64_t g = 0; g < w.groups; ++g) {
    __m256 acc[kU][kM];
    for (int u = 0; u < kU; ++u)
      for (int i = 0; i < kM; ++i) acc[u][i] = _mm256_setzero_ps();
    const int64_t c0 = g * chunks;
    for (int64_t ch = 0; ch < chunks; ch += kU) {
      for (int u = 0; u < kU; ++u) {
        const __m256 q = unpack8_f32<kBits>(row, c0 + ch + u);
        for (int i = 0; i < kM; ++i)
          acc[u][i] =
              _mm256_fmadd_ps(q, _mm256_loadu_ps(xr[i] + (c0 + ch + u) * kLanes), acc[u][i]);
      }
    }
    const __m256 s = _mm256_set1_ps(scalar_f32(scales, g));
    for (int i = 0; i < kM; ++i) {
      __m256 sum = acc[0][i];
      for (int u = 1; u < kU; ++u) sum = _mm256_add_ps(sum, acc[u][i]);
      total[i] = _mm256_fmadd_ps(s, sum, total[i]);
    }
  }
  finish_row<S, kM>(c, n, m0, total);
}

template <typename S, int kBits, int kM>
inline void row(const GemvCtx& c, int64_t n, int64_t m0) {
  if constexpr (kBits == 4)
    row_q4<S, kM>(c, n, m0);
  else
    row_natural<S, kBits, kM>(c, n, m0);
}

// Weight row n against every x row, kRowsTogether at a time.
template <typename S, int kBits>
void row_all_x(const GemvCtx& c, int64_t n) {
  const int64_t m = c.a->m;
  int64_t m0 = 0;
  for (; m0 + kRowsTogether <= m; m0 += kRowsTogether) row<S, kBits, kRowsTogether>(c, n, m0);
  switch (m - m0) {
    case 1:
      return row<S, kBits, 1>(c, n, m0);
    case 2:
      return row<S, kBits, 2>(c, n, m0);
    case 3:
      return row<S, kBits, 3>(c, n, m0);
    default:
      return;
  }
}

template <typename S, int kBits>
void gemv_typed(const GemvCtx& c) {
  const QuantView& w = *c.w;
  const int64_t row_bytes = w.row_bytes + 2 * w.groups * int64_t(dtype_size(w.scale_dtype));
  const int64_t grain =
      std::max<int64_t>(1, kQGemvMinBytesPerTask / std::max<int64_t>(1, row_bytes));
  const int threads = ThreadPool::global().num_threads();
  const int64_t tasks = std::min<int64_t>((w.n + grain - 1) / grain, kTasksPerThread * threads);
  const int64_t per_task = (w.n + tasks - 1) / tasks;
  ThreadPool::global().run(tasks, [&](int64_t t) {
    const int64_t n0 = t * per_task, n1 = std::min(w.n, n0 + per_task);
    for (int64_t n = n0; n < n1; ++n) row_all_x<S, kBits>(c, n);
  });
}

}  // namespace

void quantized_gemv(const MatmulArgs& a, const QuantView& w) {
  const int64_t k = w.k, gs = w.group_size;
  // Group sums of x, once per call (f32, like the accumulation).
  std::vector<float> xsum(size_t(a.m * w.groups));
  for (int64_t i = 0; i < a.m; ++i) {
    const float* x = a.x + i * a.x_stride;
    for (int64_t g = 0; g < w.groups; ++g) {
      __m256 acc = _mm256_setzero_ps();
      for (int64_t j = g * gs; j < (g + 1) * gs; j += kLanes)
        acc = _mm256_add_ps(acc, _mm256_loadu_ps(x + j));
      xsum[size_t(i * w.groups + g)] = hsum(acc);
    }
  }
  GemvCtx c{&a, &w, a.x, xsum.data()};
  std::vector<float> permuted;
  if (w.bits == 4) {
    // Per 16 codes (8 bytes): low nibbles hold the even elements, high nibbles the odd ones
    // (with the byte trick, the second half holds x_odd - 16 x_even).
    permuted.resize(size_t(a.m * k));
    for (int64_t i = 0; i < a.m; ++i) {
      const float* x = a.x + i * a.x_stride;
      float* xp = permuted.data() + i * k;
      for (int64_t b = 0; b < k; b += 16)
        for (int j = 0; j < 8; ++j) {
          xp[b + j] = x[b + 2 * j];
          xp[b + 8 + j] = kByteTrick ? x[b + 2 * j + 1] - 16.0f * x[b + 2 * j] : x[b + 2 * j + 1];
        }
    }
    c.xs = permuted.data();
  }
  dispatch_scale(w.scale_dtype, [&]<typename S>() {
    dispatch_bits(w.bits, [&]<int kBits>() { gemv_typed<S, kBits>(c); });
  });
}

}  // namespace hearth::ops::cpu
