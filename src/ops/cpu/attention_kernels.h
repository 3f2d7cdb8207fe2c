// Inner kernels of the CPU paged attention (attention.cpp): scores of query rows against a tile
// of up to kKeyTile keys, and the probability-weighted accumulation of value rows. Two shapes:
// "direct" for the few rows of a decode step (key/value rows read and widened in registers once
// for all rows) and "transposed" for the many rows of a prefill tile (keys transposed into an L1
// buffer once, then an outer-product kernel like the GEMM's).
#pragma once

#include <algorithm>
#include <cstdint>

#include "ops/cpu/simd.h"

namespace hearth::ops::cpu::attention {

// Keys per tile: the scores of a tile are two ymm per query row.
inline constexpr int64_t kKeyTile = 16;

// Widens up to kKeyTile key rows (rows[j], j < n) into kt[d * kKeyTile + j]; missing keys are 0.
template <typename T>
void load_keys_transposed(const T* const* rows, int64_t n, int64_t d, float* kt) {
  for (int half = 0; half < 2; ++half) {
    int64_t valid = std::clamp<int64_t>(n - half * 8, 0, 8);
    float* dst = kt + half * 8;
    if (valid == 0) {
      for (int64_t c = 0; c < d; ++c) _mm256_storeu_ps(dst + c * kKeyTile, _mm256_setzero_ps());
      continue;
    }
    const T* src[8];
    for (int j = 0; j < 8; ++j) src[j] = rows[half * 8 + std::min<int64_t>(j, valid - 1)];
    int64_t c = 0;
    for (; c + 8 <= d; c += 8) {
      __m256 r0 = load8(src[0] + c), r1 = load8(src[1] + c), r2 = load8(src[2] + c),
             r3 = load8(src[3] + c), r4 = load8(src[4] + c), r5 = load8(src[5] + c),
             r6 = load8(src[6] + c), r7 = load8(src[7] + c);
      transpose8(r0, r1, r2, r3, r4, r5, r6, r7);
      float* o = dst + c * kKeyTile;
      _mm256_storeu_ps(o + 0 * kKeyTile, r0);
      _mm256_storeu_ps(o + 1 * kKeyTile, r1);
      _mm256_storeu_ps(o + 2 * kKeyTile, r2);
      _mm256_storeu_ps(o + 3 * kKeyTile, r3);
      _mm256_storeu_ps(o + 4 * kKeyTile, r4);
      _mm256_storeu_ps(o + 5 * kKeyTile, r5);
      _mm256_storeu_ps(o + 6 * kKeyTile, r6);
      _mm256_storeu_ps(o + 7 * kKeyTile, r7);
    }
    for (; c < d; ++c)
      for (int j = 0; j < 8; ++j)
        dst[c * kKeyTile + j] = load_as_f32(src[j] + c, dtype_of<T>::value);
    if (valid < 8) {  // keys past n were loaded as copies of the last one: zero them
      __m256 keep = _mm256_castsi256_ps(lane_mask(int(valid)));
      for (int64_t cc = 0; cc < d; ++cc)
        _mm256_storeu_ps(dst + cc * kKeyTile,
                         _mm256_and_ps(keep, _mm256_loadu_ps(dst + cc * kKeyTile)));
    }
  }
}

// scores[r][0..16) = q[r] . k[0..16) for kRows query rows (q rows are d floats apart).
template <int kRows>
inline void score_rows_transposed(const float* q, int64_t d, const float* kt, float* scores) {
  __m256 acc[kRows][2];
#pragma GCC unroll 4
  for (int r = 0; r < kRows; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t c = 0; c < d; ++c) {
    __m256 k0 = _mm256_loadu_ps(kt + c * kKeyTile), k1 = _mm256_loadu_ps(kt + c * kKeyTile + 8);
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      __m256 qv = _mm256_broadcast_ss(q + r * d + c);
      acc[r][0] = _mm256_fmadd_ps(qv, k0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(qv, k1, acc[r][1]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < kRows; ++r) {
    _mm256_storeu_ps(scores + r * kKeyTile, acc[r][0]);
    _mm256_storeu_ps(scores + r * kKeyTile + 8, acc[r][1]);
  }
}

// Decode-sized row groups: scores[r][j] = q[r] . k_j, reading each key row once (widened in
// registers) for all kRows rows, two keys at a time.
template <int kRows, typename T>
void score_rows_direct(const float* q, int64_t d, const T* const* krows, int64_t n, float* scores) {
  for (int64_t j = 0; j < n; j += 2) {
    const T* k0 = krows[j];
    const T* k1 = krows[std::min(j + 1, n - 1)];
    __m256 a[kRows][2];
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) a[r][0] = a[r][1] = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 8 <= d; c += 8) {
      __m256 kv0 = load8(k0 + c), kv1 = load8(k1 + c);
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r) {
        __m256 qv = _mm256_loadu_ps(q + r * d + c);
        a[r][0] = _mm256_fmadd_ps(qv, kv0, a[r][0]);
        a[r][1] = _mm256_fmadd_ps(qv, kv1, a[r][1]);
      }
    }
    if (c < d) {
      const int rest = int(d - c);
      __m256 kv0 = load_partial(k0 + c, rest), kv1 = load_partial(k1 + c, rest);
      for (int r = 0; r < kRows; ++r) {
        __m256 qv = load_partial(q + r * d + c, rest);
        a[r][0] = _mm256_fmadd_ps(qv, kv0, a[r][0]);
        a[r][1] = _mm256_fmadd_ps(qv, kv1, a[r][1]);
      }
    }
    int r = 0;
    for (; r + 2 <= kRows; r += 2) {
      alignas(16) float s4[4];
      _mm_store_ps(s4, hsum4(a[r][0], a[r][1], a[r + 1][0], a[r + 1][1]));
      scores[r * kKeyTile + j] = s4[0];
      scores[r * kKeyTile + j + 1] = s4[1];
      scores[(r + 1) * kKeyTile + j] = s4[2];
      scores[(r + 1) * kKeyTile + j + 1] = s4[3];
    }
    if (r < kRows) {
      scores[r * kKeyTile + j] = hsum(a[r][0]);
      scores[r * kKeyTile + j + 1] = hsum(a[r][1]);
    }
  }
}

// For kRows rows: acc[r][0..d) = acc[r] * correction[r] + sum_{j<n} p[r][j] * v_j, with the value
// rows read once (widened in registers when T is f16/bf16) for all the rows.
template <int kRows, typename T>
void accumulate_rows(float* acc, int64_t d, const float* correction, const float* p,
                     const T* const* vrows, int64_t n) {
  int64_t c = 0;
  for (; c + 16 <= d; c += 16) {
    __m256 a[kRows][2];
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      __m256 corr = _mm256_set1_ps(correction[r]);
      a[r][0] = _mm256_mul_ps(_mm256_loadu_ps(acc + r * d + c), corr);
      a[r][1] = _mm256_mul_ps(_mm256_loadu_ps(acc + r * d + c + 8), corr);
    }
    for (int64_t j = 0; j < n; ++j) {
      __m256 v0 = load8(vrows[j] + c), v1 = load8(vrows[j] + c + 8);
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r) {
        __m256 pj = _mm256_broadcast_ss(p + r * kKeyTile + j);
        a[r][0] = _mm256_fmadd_ps(pj, v0, a[r][0]);
        a[r][1] = _mm256_fmadd_ps(pj, v1, a[r][1]);
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      _mm256_storeu_ps(acc + r * d + c, a[r][0]);
      _mm256_storeu_ps(acc + r * d + c + 8, a[r][1]);
    }
  }
  for (; c < d; c += 8) {
    const int w = int(std::min<int64_t>(8, d - c));
    for (int r = 0; r < kRows; ++r) {
      __m256 a = _mm256_mul_ps(load_partial(acc + r * d + c, w), _mm256_set1_ps(correction[r]));
      for (int64_t j = 0; j < n; ++j)
        a = _mm256_fmadd_ps(_mm256_broadcast_ss(p + r * kKeyTile + j),
                            w == 8 ? load8(vrows[j] + c) : load_partial(vrows[j] + c, w), a);
      store_partial(acc + r * d + c, a, w);
    }
  }
}

template <typename T>
void accumulate_all_rows(float* acc, int64_t rows, int64_t d, const float* correction,
                         const float* p, const T* const* vrows, int64_t n) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4)
    accumulate_rows<4>(acc + r * d, d, correction + r, p + r * kKeyTile, vrows, n);
  for (; r + 2 <= rows; r += 2)
    accumulate_rows<2>(acc + r * d, d, correction + r, p + r * kKeyTile, vrows, n);
  if (r < rows) accumulate_rows<1>(acc + r * d, d, correction + r, p + r * kKeyTile, vrows, n);
}

}  // namespace hearth::ops::cpu::attention
