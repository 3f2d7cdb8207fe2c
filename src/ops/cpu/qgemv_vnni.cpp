// The int16 quantized GEMV of MatmulPrecision::bf16 (qgemv.cpp) on AVX512-VNNI CPUs, for any
// number of x rows. Written for batched decode, where the ymm kernel is bound by instructions
// rather than memory (16 rows of x took ~10x the time of one on the Xeon VM: per 64 codes and x
// row it spends 4 vpmaddwd, 4 adds and the loads of x, on two ports); at one row it streams the
// codes 2-5 % faster too.
//
// Here a 64-byte load holds 32 16-bit lanes of 4 (4 bits) or 2 (8 bits) codes; each code plane
// is isolated once per weight row with a shift and a mask and serves up to 8 rows of x through
// one vpdpwssd each (multiply pairs of int16 and add into int32 lanes: no separate add). x is
// rounded to int16 per group exactly as in qgemv.cpp and permuted into this kernel's lane order
// (per 64-byte block, plane j holds the x of code j of each of the 32 lanes). A 32-bit lane sums
// codes of one group; a block holds 1, 2 or 4 groups (4 bits at group size 128, 64, 32; 8 bits:
// half a group at 128, 1 at 64, 2 at 32), so each group's integer dot is converted once and
// scaled by its own scale * step, lanes picking their group's factor with a permute.
#include <immintrin.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "core/thread_pool.h"
#include "ops/cpu/quantized_internal.h"

namespace hearth::ops::cpu {
namespace {

constexpr int kMaxRows = 8;       // x rows per pass over a weight row
constexpr int kBlockBytes = 64;   // one zmm of codes
constexpr int kChunkGroups = 16;  // groups whose factors are computed together

#define HEARTH_ZMM_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

template <int kBits>
constexpr int kBlockCodes = kBlockBytes * 8 / kBits;  // 128 or 64
template <int kBits>
constexpr int kPlanes = 16 / kBits;  // codes per 16-bit lane

// 16 scales or biases from p as f32 (lanes past `count` read as 0).
template <typename S>
HEARTH_ZMM_TARGET inline __m512 load16(const S* p, int count) {
  const __mmask16 m = count >= 16 ? __mmask16(0xffff) : __mmask16((1u << count) - 1u);
  if constexpr (std::is_same_v<S, float>) {
    return _mm512_maskz_loadu_ps(m, p);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(m, p);
    if constexpr (std::is_same_v<S, BF16>)
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    else
      return _mm512_cvtph_ps(h);
  }
}

struct Ctx {
  const MatmulArgs* a;
  const QuantView* w;
  const int16_t* xq;  // [m, k], permuted per block
  const float* step;  // [m, groups]
  const float* xsum;  // [m, groups]
};

// GCC 12's _mm512_cvtepi32_ps and _mm512_reduce_add_ps start from _mm512_undefined_*(), which
// its warnings report as uninitialized (a known false positive of its headers, as in
// qgemm_int16.cpp).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
// Weight row n against x rows m0 .. m0 + kM - 1. kG: groups per block (1, 2 or 4), or 0 for two
// blocks per group (8 bits, group size 128).
template <typename S, int kBits, int kM, int kG>
HEARTH_ZMM_TARGET void row_zmm(const Ctx& c, int64_t n, int64_t m0) {
  constexpr int kB = kBlockCodes<kBits>;
  const QuantView& w = *c.w;
  const uint8_t* row = w.row(n);
  const S* scales = static_cast<const S*>(w.scales) + n * w.groups;
  const S* biases = static_cast<const S*>(w.biases) + n * w.groups;
  const int16_t* xr[kM];
  for (int i = 0; i < kM; ++i) xr[i] = c.xq + (m0 + i) * w.k;
  // Lane p of a block belongs to local group p / (16 / kG).
  const __m512i group_of_lane =
      kG == 4   ? _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)
      : kG == 2 ? _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)
                : _mm512_setzero_si512();
  const __m512i low = _mm512_set1_epi16(kBits == 4 ? 0x000f : 0x00ff);
  __m512 total[kM];
  for (int i = 0; i < kM; ++i) total[i] = _mm512_setzero_ps();
  alignas(64) float factor[kM][2 * kChunkGroups];  // scale * step; read 16 at a time

  const int64_t blocks_per_group = kG == 0 ? 2 : 1;
  for (int64_t g0 = 0; g0 < w.groups; g0 += kChunkGroups) {
    const int gn = int(std::min<int64_t>(kChunkGroups, w.groups - g0));
    const __m512 sv = load16(scales + g0, gn), bv = load16(biases + g0, gn);
    const __mmask16 gm = gn >= 16 ? __mmask16(0xffff) : __mmask16((1u << gn) - 1u);
    for (int i = 0; i < kM; ++i) {
      const float* step = c.step + (m0 + i) * w.groups + g0;
      const float* xsum = c.xsum + (m0 + i) * w.groups + g0;
      _mm512_store_ps(factor[i], _mm512_mul_ps(sv, _mm512_maskz_loadu_ps(gm, step)));
      // The bias terms b_g * xsum_g of these groups join the same lanes (one sum at the end).
      total[i] = _mm512_fmadd_ps(bv, _mm512_maskz_loadu_ps(gm, xsum), total[i]);
    }
    const int64_t b_first = kG == 0 ? g0 * 2 : g0 / kG;
    const int64_t b_end = kG == 0 ? (g0 + gn) * 2 : (g0 + gn) / kG;
    // Codes and scales of this weight row, kQGemvPrefetchAhead bytes on (rows are contiguous).
    const char* ahead =
        reinterpret_cast<const char*>(row + b_first * kBlockBytes) + kQGemvPrefetchAhead;
    for (int64_t l = 0; l < (b_end - b_first) * kBlockBytes; l += 64)
      _mm_prefetch(ahead + l, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(scales + g0 + kChunkGroups * 4), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(biases + g0 + kChunkGroups * 4), _MM_HINT_T0);

    __m512i acc[kM];
    for (int i = 0; i < kM; ++i) acc[i] = _mm512_setzero_si512();
    for (int64_t b = b_first; b < b_end; ++b) {
      const __m512i v = _mm512_loadu_si512(row + b * kBlockBytes);
      __m512i q[kPlanes<kBits>];
      q[0] = _mm512_and_si512(v, low);
      for (int j = 1; j < kPlanes<kBits>; ++j)
        q[j] = j == kPlanes<kBits> - 1 ? _mm512_srli_epi16(v, kBits * j)
                                       : _mm512_and_si512(_mm512_srli_epi16(v, kBits * j), low);
      if (kG != 0 || (b - b_first) % blocks_per_group == 0)
        for (int i = 0; i < kM; ++i) acc[i] = _mm512_setzero_si512();
      for (int i = 0; i < kM; ++i) {
        const int16_t* x = xr[i] + b * kB;
        for (int j = 0; j < kPlanes<kBits>; ++j)
          acc[i] = _mm512_dpwssd_epi32(acc[i], q[j], _mm512_load_si512(x + 32 * j));
      }
      if (kG == 0 && (b - b_first) % blocks_per_group != blocks_per_group - 1) continue;
      const int local = int(kG == 0 ? (b - b_first) / 2 : (b - b_first) * kG);
      for (int i = 0; i < kM; ++i) {
        const __m512 f =
            kG <= 1 ? _mm512_set1_ps(factor[i][local])
                    : _mm512_permutexvar_ps(group_of_lane, _mm512_loadu_ps(&factor[i][local]));
        total[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i]), f, total[i]);
      }
    }
  }
  const MatmulArgs& a = *c.a;
  for (int i = 0; i < kM; ++i)
    a.out[(m0 + i) * a.out_stride + n] =
        _mm512_reduce_add_ps(total[i]) + (a.bias ? a.bias[n] : 0.0f);
}

#pragma GCC diagnostic pop

template <typename S, int kBits, int kG>
HEARTH_ZMM_TARGET void rows_zmm(const Ctx& c, int64_t n0, int64_t n1) {
  const int64_t m = c.a->m;
  for (int64_t t0 = n0; t0 < n1; t0 += kQGemvWeightTile) {
    const int64_t t1 = std::min(n1, t0 + kQGemvWeightTile);
    int64_t m0 = 0;
    for (; m0 + kMaxRows <= m; m0 += kMaxRows)
      for (int64_t n = t0; n < t1; ++n) row_zmm<S, kBits, kMaxRows, kG>(c, n, m0);
    // The remaining rows as 4 + 2 + 1.
    if (m - m0 >= 4) {
      for (int64_t n = t0; n < t1; ++n) row_zmm<S, kBits, 4, kG>(c, n, m0);
      m0 += 4;
    }
    if (m - m0 >= 2) {
      for (int64_t n = t0; n < t1; ++n) row_zmm<S, kBits, 2, kG>(c, n, m0);
      m0 += 2;
    }
    if (m - m0 == 1)
      for (int64_t n = t0; n < t1; ++n) row_zmm<S, kBits, 1, kG>(c, n, m0);
  }
}

template <typename S, int kBits>
void gemv_zmm(const Ctx& c) {
  const QuantView& w = *c.w;
  auto run = [&]<int kG>() {
    for_row_ranges(w, [&](int64_t n0, int64_t n1) { rows_zmm<S, kBits, kG>(c, n0, n1); });
  };
  switch (kBlockCodes<kBits> / w.group_size) {
    case 0:  // 8 bits, group size 128 (a 4-bit block is 128 codes: never less than a group)
      if constexpr (kBits == 8) return run.template operator()<0>();
      return;
    case 1:
      return run.template operator()<1>();
    case 2:
      return run.template operator()<2>();
    default:
      return run.template operator()<4>();
  }
}

}  // namespace

bool quantized_gemv_vnni(const MatmulArgs& a, const QuantView& w) {
  static const bool vl = __builtin_cpu_supports("avx512vl") != 0;  // every VNNI CPU so far
  if (cpu_vnni() != CpuVnni::avx512 || !vl || (w.bits != 4 && w.bits != 8)) return false;
  const int64_t block = w.bits == 4 ? kBlockCodes<4> : kBlockCodes<8>;
  if (w.k % block != 0 || w.k % w.group_size != 0) return false;
  std::vector<float> step, xsum;
  AlignedArray<int16_t> xq(size_t(a.m * w.k));
  round_x_int16_lanes(a, w, 32, xq.p, step, xsum);  // 32 int16 lanes per zmm
  const Ctx c{&a, &w, xq.p, step.data(), xsum.data()};
  dispatch_scale(w.scale_dtype, [&]<typename S>() {
    if (w.bits == 4)
      gemv_zmm<S, 4>(c);
    else
      gemv_zmm<S, 8>(c);
  });
  return true;
}

}  // namespace hearth::ops::cpu
