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
//
// Under MatmulPrecision::bf16 (ops/precision.h) 4- and 8-bit products instead round x to int16
// per quantization group (scale = the group's largest |x| / 32767, a relative step of 2^-15 at the
// group's largest element against bf16's 2^-8 per element) and dot it with the codes in integer
// arithmetic: a 32-byte load holds 16 little-endian 16-bit lanes of 4 (2) codes each; code j of
// every lane is isolated with a mask (left scaled by 16^j, undone exactly on the int32 products)
// or a shift (the top code), and vpmaddwd multiplies it with the matching int16 x and adds pairs
// into 32-bit lanes. x is permuted once per call into that order (per block of 64 (32) codes:
// plane j holds the x of code j of each lane). ~0.25 uops per 4-bit code instead of ~0.5, and with
// the codes prefetched 2 KiB ahead two cores stream them at ~70 % of the read bandwidth.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <vector>

#include "core/thread_pool.h"
#include "ops/cpu/quantized_internal.h"
#include "ops/precision.h"

namespace hearth::ops::cpu {
namespace {

// Packed bytes per task below which a product is not split further (a pool wake-up costs about as
// much as streaming 64 KiB on the 2-core Zen dev VM; as in gemv.cpp; for_row_ranges).
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
  // The int16 path only: x rounded per group and permuted into lane order (row stride k), and
  // each group's step ([m, groups]: x ~= xq * step).
  const int16_t* xq = nullptr;
  const float* xstep = nullptr;
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
    // The group's codes kQGemvPrefetchAhead bytes on (16-64 bytes a group: one line).
    _mm_prefetch(reinterpret_cast<const char*>(p) + kQGemvPrefetchAhead, _MM_HINT_T0);
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
    // The group's codes kQGemvPrefetchAhead bytes on (16-128 bytes a group: one or two lines).
    const char* ahead = reinterpret_cast<const char*>(row + c0 * kBits) + kQGemvPrefetchAhead;
    _mm_prefetch(ahead, _MM_HINT_T0);
    if (w.group_size * kBits > 512) _mm_prefetch(ahead + 64, _MM_HINT_T0);
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

// Codes per 16-bit lane and per 32-byte block of the int16 path.
template <int kBits>
constexpr int kCodesPerLane = 16 / kBits;
template <int kBits>
constexpr int kBlockCodes = 16 * kCodesPerLane<kBits>;

// Weight row n against x rows m0 .. m0 + kM - 1, 4 or 8 bits, x rounded to int16 (see the top).
// The integer dot of each group is exact; it becomes f32 once, times scale * step. kPerGroup:
// 32-byte blocks per group (1, 2 or 4), or 0 for two groups per block (4 bits, group 32).
template <typename S, int kBits, int kM, int kPerGroup>
inline void row_int16(const GemvCtx& c, int64_t n, int64_t m0) {
  constexpr int kB = kBlockCodes<kBits>;
  const QuantView& w = *c.w;
  const uint8_t* row = w.row(n);
  const S* scales = static_cast<const S*>(w.scales) + n * w.groups;
  const S* biases = static_cast<const S*>(w.biases) + n * w.groups;
  const int16_t* xr[kM];
  const float* step[kM];
  const float* xsum[kM];
  for (int i = 0; i < kM; ++i) {
    xr[i] = c.xq + (m0 + i) * w.k;
    step[i] = c.xstep + (m0 + i) * w.groups;
    xsum[i] = c.xsum + (m0 + i) * w.groups;
  }
  // Codes are isolated with masks where possible (vpand issues on three ports, shifts and
  // vpmaddwd share two): 4 bits: code 0 of a lane as c, code 1 as 16 c, code 2 as 256 c, code 3
  // shifted down. The products of code 1 (16x) and code 2 (256x, shifted right by 4: exact, a
  // multiple of 256) sum in acc_hi, which is 16x its dot; the flush shifts it back. 8 bits: the low
  // byte masked, the high byte shifted down. A 32-bit lane of acc_hi gathers <= 8 products of
  // <= 240 * 32767: no overflow.
  const __m256i mask0 = _mm256_set1_epi16(kBits == 4 ? 0x000f : 0x00ff);
  const __m256i mask1 = _mm256_set1_epi16(0x00f0), mask2 = _mm256_set1_epi16(0x0f00);
  __m256i acc_lo[kM], acc_hi[kM];
  auto dot_block = [&](int64_t b) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + b * 32));
    auto x_plane = [&](int i, int j) {
      return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr[i] + b * kB + j * 16));
    };
    if constexpr (kBits == 4) {
      const __m256i q0 = _mm256_and_si256(v, mask0), q1 = _mm256_and_si256(v, mask1);
      const __m256i q2 = _mm256_and_si256(v, mask2), q3 = _mm256_srli_epi16(v, 12);
      for (int i = 0; i < kM; ++i) {
        acc_lo[i] =
            _mm256_add_epi32(acc_lo[i], _mm256_add_epi32(_mm256_madd_epi16(q0, x_plane(i, 0)),
                                                         _mm256_madd_epi16(q3, x_plane(i, 3))));
        acc_hi[i] = _mm256_add_epi32(
            acc_hi[i],
            _mm256_add_epi32(_mm256_madd_epi16(q1, x_plane(i, 1)),
                             _mm256_srai_epi32(_mm256_madd_epi16(q2, x_plane(i, 2)), 4)));
      }
    } else {
      const __m256i q0 = _mm256_and_si256(v, mask0), q1 = _mm256_srli_epi16(v, 8);
      for (int i = 0; i < kM; ++i)
        acc_lo[i] =
            _mm256_add_epi32(acc_lo[i], _mm256_add_epi32(_mm256_madd_epi16(q0, x_plane(i, 0)),
                                                         _mm256_madd_epi16(q1, x_plane(i, 1))));
    }
  };
  auto group_sum = [&](int i) {
    const __m256i sum =
        kBits == 4 ? _mm256_add_epi32(acc_lo[i], _mm256_srai_epi32(acc_hi[i], 4)) : acc_lo[i];
    return _mm256_cvtepi32_ps(sum);
  };
  auto reset = [&] {
    for (int i = 0; i < kM; ++i) acc_lo[i] = acc_hi[i] = _mm256_setzero_si256();
  };
  __m256 total[kM];
  for (int i = 0; i < kM; ++i) total[i] = _mm256_setzero_ps();
  // scale * step of 8 groups at a time, read back as broadcasts.
  alignas(32) float factor[kM][kLanes];
  // Groups g0 .. g0 + gn - 1 (gn is a compile-time 8 for every chunk but the last).
  auto groups = [&](int64_t g0, int64_t gn) {
    if constexpr (kPerGroup > 0) {
      for (int64_t g = 0; g < gn; ++g) {
        reset();
        for (int b = 0; b < kPerGroup; ++b) dot_block((g0 + g) * kPerGroup + b);
        for (int i = 0; i < kM; ++i)
          total[i] = _mm256_fmadd_ps(group_sum(i), _mm256_broadcast_ss(&factor[i][g]), total[i]);
      }
    } else {
      // 4 bits, group 32: block b holds groups 2b (32-bit lanes 0-3, codes 0-31) and 2b + 1.
      for (int64_t g = 0; g < gn; g += 2) {
        reset();
        dot_block((g0 + g) / 2);
        for (int i = 0; i < kM; ++i) {
          const __m256 f =
              _mm256_set_m128(_mm_broadcast_ss(&factor[i][g + 1]), _mm_broadcast_ss(&factor[i][g]));
          total[i] = _mm256_fmadd_ps(group_sum(i), f, total[i]);
        }
      }
    }
  };
  int64_t g0 = 0;
  const int64_t chunk_bytes = kLanes * w.group_size * kBits / 8;
  for (; g0 + kLanes <= w.groups; g0 += kLanes) {
    // The codes kQGemvPrefetchAhead bytes on (rows are contiguous, so past a row's end this is the
    // next row's start): see kQGemvPrefetchAhead.
    const char* ahead =
        reinterpret_cast<const char*>(row + g0 * chunk_bytes / kLanes) + kQGemvPrefetchAhead;
    for (int64_t l = 0; l < chunk_bytes; l += 64) _mm_prefetch(ahead + l, _MM_HINT_T0);
    // The scales and biases as far ahead (rows of both are contiguous too).
    const int64_t groups_ahead = kQGemvPrefetchAhead * kLanes / chunk_bytes;
    _mm_prefetch(reinterpret_cast<const char*>(scales + g0 + groups_ahead), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(biases + g0 + groups_ahead), _MM_HINT_T0);
    const __m256 sv = load8(scales + g0), bv = load8(biases + g0);
    for (int i = 0; i < kM; ++i) {
      _mm256_store_ps(factor[i], _mm256_mul_ps(sv, _mm256_loadu_ps(step[i] + g0)));
      // The bias terms b_g * xsum_g of these groups join the same lanes (one sum at the end).
      total[i] = _mm256_fmadd_ps(bv, _mm256_loadu_ps(xsum[i] + g0), total[i]);
    }
    groups(g0, kLanes);
  }
  float tail[kM] = {};
  if (g0 < w.groups) {
    for (int64_t g = g0; g < w.groups; ++g)
      for (int i = 0; i < kM; ++i) {
        factor[i][g - g0] = scalar_f32(scales, g) * step[i][g];
        tail[i] += scalar_f32(biases, g) * xsum[i][g];
      }
    groups(g0, w.groups - g0);
  }
  const MatmulArgs& a = *c.a;
  for (int i = 0; i < kM; ++i)
    a.out[(m0 + i) * a.out_stride + n] = hsum(total[i]) + tail[i] + (a.bias ? a.bias[n] : 0.0f);
}

// Whether the int16 path takes this product: 4 or 8 bits, and K in whole 32-byte blocks.
bool int16_path(const QuantView& w) {
  if (w.bits == 4) return w.k % kBlockCodes<4> == 0;
  if (w.bits == 8) return w.k % kBlockCodes<8> == 0;
  return false;
}

}  // namespace

void round_x_int16_rows(const MatmulArgs& a, const QuantView& w, int16_t* xq, float* step,
                        float* xsum) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i lo = _mm256_set1_epi32(-32767), hi = _mm256_set1_epi32(32767);
  for (int64_t i = 0; i < a.m; ++i) {
    const float* x = a.x + i * a.x_stride;
    for (int64_t g = 0; g < w.groups; ++g) {
      const float* xg = x + g * w.group_size;
      __m256 vmax = _mm256_setzero_ps();
      for (int64_t j = 0; j < w.group_size; j += kLanes)
        vmax = _mm256_max_ps(vmax, _mm256_and_ps(_mm256_loadu_ps(xg + j), abs_mask));
      __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
      m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
      const float amax = std::max(_mm_cvtss_f32(m4), _mm_cvtss_f32(_mm_shuffle_ps(m4, m4, 1)));
      // A NaN in x is lost by max_ps but kept by the product below (NaN * inv); an inf makes amax
      // and so the step non-finite: the output is NaN either way, as the exact path's is.
      const size_t at = size_t(i * w.groups + g);
      step[at] = amax / 32767.0f;
      const __m256 inv = _mm256_set1_ps(amax > 0 ? 32767.0f / amax : 0.0f);
      __m256i sum = _mm256_setzero_si256();
      int16_t* out = xq + i * w.k + g * w.group_size;
      for (int64_t j = 0; j < w.group_size; j += 2 * kLanes) {
        // Round half to even (the default MXCSR mode); NaN converts to INT_MIN, clamped.
        auto round8 = [&](int64_t at) {
          return _mm256_max_epi32(lo, _mm256_min_epi32(hi, _mm256_cvtps_epi32(_mm256_mul_ps(
                                                               _mm256_loadu_ps(xg + at), inv))));
        };
        const __m256i r0 = round8(j), r1 = round8(j + kLanes);
        sum = _mm256_add_epi32(sum, _mm256_add_epi32(r0, r1));
        // packs interleaves 128-bit halves; the permute puts the 16 values back in order.
        const __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(r0, r1), 0xd8);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j), packed);
      }
      alignas(32) int32_t lanes[kLanes];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), sum);
      int64_t total = 0;
      for (int32_t v : lanes) total += v;
      xsum[at] = float(total) * step[at];
    }
  }
}

void round_x_int16_lanes(const MatmulArgs& a, const QuantView& w, int lanes, int16_t* xq,
                         std::vector<float>& step, std::vector<float>& xsum) {
  const int per_lane = 16 / w.bits, block = lanes * per_lane;
  step.resize(size_t(a.m * w.groups));
  xsum.resize(size_t(a.m * w.groups));
  std::vector<int16_t> natural(size_t(a.m * w.k));
  round_x_int16_rows(a, w, natural.data(), step.data(), xsum.data());
  for (int64_t i = 0; i < a.m; ++i) {
    const int16_t* in = natural.data() + i * w.k;
    int16_t* out = xq + i * w.k;
    for (int64_t b = 0; b < w.k; b += block)
      for (int j = 0; j < per_lane; ++j)
        for (int l = 0; l < lanes; ++l) out[b + j * lanes + l] = in[b + per_lane * l + j];
  }
}

void for_row_ranges(const QuantView& w, const std::function<void(int64_t, int64_t)>& rows) {
  const int64_t row_bytes = w.row_bytes + 2 * w.groups * int64_t(dtype_size(w.scale_dtype));
  const int64_t grain =
      std::max<int64_t>(1, kQGemvMinBytesPerTask / std::max<int64_t>(1, row_bytes));
  const int threads = ThreadPool::global().num_threads();
  const int64_t tasks = std::min<int64_t>((w.n + grain - 1) / grain, kTasksPerThread * threads);
  const int64_t per_task = (w.n + tasks - 1) / tasks;
  ThreadPool::global().run(tasks, [&](int64_t t) {
    const int64_t n0 = t * per_task, n1 = std::min(w.n, n0 + per_task);
    rows(n0, n1);
  });
}

namespace {

template <typename S, int kBits, int kM>
inline void row(const GemvCtx& c, int64_t n, int64_t m0) {
  if constexpr (kBits == 4 || kBits == 8) {
    if (c.xq) {
      switch (c.w->group_size * kBits / 256) {  // 32-byte blocks per group
        case 0:
          return row_int16<S, kBits, kM, 0>(c, n, m0);
        case 1:
          return row_int16<S, kBits, kM, 1>(c, n, m0);
        case 2:
          return row_int16<S, kBits, kM, 2>(c, n, m0);
        default:
          return row_int16<S, kBits, kM, 4>(c, n, m0);
      }
    }
  }
  if constexpr (kBits == 4)
    row_q4<S, kM>(c, n, m0);
  else
    row_natural<S, kBits, kM>(c, n, m0);
}

// Weight rows [n0, n1) against every x row, kRowsTogether at a time; with more than
// kRowsTogether x rows, in tiles of kQGemvWeightTile weight rows.

template <typename S, int kBits>
void rows_all_x(const GemvCtx& c, int64_t n0, int64_t n1) {
  const int64_t m = c.a->m;
  const int64_t tile = m > kRowsTogether ? kQGemvWeightTile : 1;
  for (int64_t t0 = n0; t0 < n1; t0 += tile) {
    const int64_t t1 = std::min(n1, t0 + tile);
    int64_t m0 = 0;
    for (; m0 + kRowsTogether <= m; m0 += kRowsTogether)
      for (int64_t n = t0; n < t1; ++n) row<S, kBits, kRowsTogether>(c, n, m0);
    for (int64_t n = t0; n < t1; ++n) {
      switch (m - m0) {
        case 1:
          row<S, kBits, 1>(c, n, m0);
          break;
        case 2:
          row<S, kBits, 2>(c, n, m0);
          break;
        case 3:
          row<S, kBits, 3>(c, n, m0);
          break;
        default:
          break;
      }
    }
  }
}

template <typename S, int kBits>
void gemv_typed(const GemvCtx& c) {
  for_row_ranges(*c.w, [&](int64_t n0, int64_t n1) { rows_all_x<S, kBits>(c, n0, n1); });
}

}  // namespace

void quantized_gemv(const MatmulArgs& a, const QuantView& w) {
  const int64_t k = w.k, gs = w.group_size;
  const bool int16 = matmul_precision() == MatmulPrecision::bf16 && int16_path(w);
  // On AVX512-VNNI CPUs the zmm kernel of qgemv_vnni.cpp (a pass over a weight row serves up to
  // 8 x rows through vpdpwssd): 1.4-1.7x this file's ymm kernel at 4-16 rows, 2-5 % at one.
  if (int16 && quantized_gemv_vnni(a, w)) return;
  // Group sums of x, once per call (f32, like the accumulation); the int16 path takes those of
  // the rounded x instead (round_x_int16_lanes).
  std::vector<float> xsum(size_t(a.m * w.groups));
  for (int64_t i = 0; i < a.m && !int16; ++i) {
    const float* x = a.x + i * a.x_stride;
    for (int64_t g = 0; g < w.groups; ++g) {
      __m256 acc = _mm256_setzero_ps();
      for (int64_t j = g * gs; j < (g + 1) * gs; j += kLanes)
        acc = _mm256_add_ps(acc, _mm256_loadu_ps(x + j));
      xsum[size_t(i * w.groups + g)] = hsum(acc);
    }
  }
  GemvCtx c{&a, &w, a.x, xsum.data()};
  AlignedArray<int16_t> xq;
  std::vector<float> xstep;
  std::vector<float> permuted;
  if (int16) {
    xq = AlignedArray<int16_t>(size_t(a.m * k));
    round_x_int16_lanes(a, w, 16, xq.p, xstep, xsum);  // 16 int16 lanes per ymm
    c.xq = xq.p;
    c.xstep = xstep.data();
  } else if (w.bits == 4) {
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
