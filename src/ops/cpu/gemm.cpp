// CPU GEMM for prefill: out[M, N] = x[M, K] . w[N, K]^T (+ bias), compute-bound.
//
// The layout follows the classic BLIS loop nest, with x playing A and w^T playing B:
//   for each N block (one task; threads take blocks dynamically)
//     for each K chunk of kKc:   pack w[n-block, k-chunk] into 16-column panels, f32, k-major
//       for each M block of kMc: (x rows stay in L2)
//         for each 16-column panel (stays in L1)
//           for each 6 rows of x: 6x16 micro-kernel over the chunk, 12 ymm accumulators
// Packing widens bf16/f16 to f32 once per (panel, chunk), so conversion cost is amortized over
// all M rows, and turns the w rows into the k-major layout the outer-product kernel wants
// (an 8x8 in-register transpose). x is not packed: the kernel broadcasts its elements straight
// from the (contiguous) rows.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "core/storage.h"
#include "core/thread_pool.h"
#include "ops/cpu/matmul_internal.h"
#include "ops/cpu/simd.h"

namespace hearth::ops::cpu {
namespace {

// Micro-tile and cache blocking, tuned on the 2-core AMD EPYC (Zen 4, 32 KiB L1d, 1 MiB L2)
// dev VM with bf16 2048x2048 and 8192x2048 weights at M = 128..512:
constexpr int kMr = 6;           // rows of x per micro-kernel (6 x 2 accumulators + 2 B + 1 A)
constexpr int kNr = 16;          // columns of out per micro-kernel (two ymm)
constexpr int64_t kKc = 256;     // K chunk: a 16-column panel is kKc * 64 B = 16 KiB (L1)
constexpr int64_t kMc = 96;      // x rows per block: 96 * kKc * 4 B = 96 KiB (L2)
constexpr int64_t kNcMax = 256;  // columns per task: packed block kKc * kNcMax * 4 B = 256 KiB (L2)

// ---- packing ------------------------------------------------------------------------------------

// Packs rows [n0, n0 + rows) (rows <= 16; missing rows become zeros) of w over k in [k0, k0 + kc)
// into panel[kk * 16 + j] = w[n0 + j, k0 + kk].
template <typename W>
void pack_panel(const W* w, int64_t k_total, int64_t n0, int64_t rows, int64_t k0, int64_t kc,
                float* panel) {
  for (int half = 0; half < 2; ++half) {
    const W* src[8];
    int64_t valid = std::clamp<int64_t>(rows - half * 8, 0, 8);
    if (valid == 0) {
      for (int64_t kk = 0; kk < kc; ++kk)
        _mm256_storeu_ps(panel + kk * kNr + half * 8, _mm256_setzero_ps());
      continue;
    }
    for (int j = 0; j < 8; ++j)
      src[j] = w + (n0 + half * 8 + std::min<int64_t>(j, valid - 1)) * k_total + k0;
    int64_t kk = 0;
    for (; kk + 8 <= kc; kk += 8) {
      __m256 r0 = load8(src[0] + kk), r1 = load8(src[1] + kk), r2 = load8(src[2] + kk),
             r3 = load8(src[3] + kk), r4 = load8(src[4] + kk), r5 = load8(src[5] + kk),
             r6 = load8(src[6] + kk), r7 = load8(src[7] + kk);
      transpose8(r0, r1, r2, r3, r4, r5, r6, r7);
      float* dst = panel + kk * kNr + half * 8;
      _mm256_storeu_ps(dst + 0 * kNr, r0);
      _mm256_storeu_ps(dst + 1 * kNr, r1);
      _mm256_storeu_ps(dst + 2 * kNr, r2);
      _mm256_storeu_ps(dst + 3 * kNr, r3);
      _mm256_storeu_ps(dst + 4 * kNr, r4);
      _mm256_storeu_ps(dst + 5 * kNr, r5);
      _mm256_storeu_ps(dst + 6 * kNr, r6);
      _mm256_storeu_ps(dst + 7 * kNr, r7);
    }
    for (; kk < kc; ++kk)
      for (int j = 0; j < 8; ++j)
        panel[kk * kNr + half * 8 + j] = load_as_f32(src[j] + kk, dtype_of<W>::value);
    if (valid < 8)  // rows past N were loaded as copies of the last row: zero them
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t j = valid; j < 8; ++j) panel[k * kNr + half * 8 + j] = 0.0f;
  }
}

// ---- micro-kernel -------------------------------------------------------------------------------

// out[0..kRows, 0..cols) (+)= tile; on the first K chunk the tile is initialized with the bias
// (or 0) instead of read.
template <int kRows>
inline void store_tile(const float (&tile)[kRows][kNr], float* out, int64_t os, int cols,
                       bool first, const float* bias) {
  for (int i = 0; i < kRows; ++i) {
    float* o = out + i * os;
    if (cols == kNr) {
      __m256 t0 = _mm256_loadu_ps(tile[i]), t1 = _mm256_loadu_ps(tile[i] + 8);
      if (first) {
        if (bias) {
          t0 = _mm256_add_ps(t0, _mm256_loadu_ps(bias));
          t1 = _mm256_add_ps(t1, _mm256_loadu_ps(bias + 8));
        }
      } else {
        t0 = _mm256_add_ps(t0, _mm256_loadu_ps(o));
        t1 = _mm256_add_ps(t1, _mm256_loadu_ps(o + 8));
      }
      _mm256_storeu_ps(o, t0);
      _mm256_storeu_ps(o + 8, t1);
    } else {
      for (int j = 0; j < cols; ++j) o[j] = tile[i][j] + (first ? (bias ? bias[j] : 0.0f) : o[j]);
    }
  }
}

// out[0..kRows, 0..cols) (+)= x[0..kRows, 0..kc) . panel; on the first K chunk the tile is
// initialized with the bias (or 0) instead of read.
template <int kRows>
void micro_kernel(int64_t kc, const float* x, int64_t xs, const float* panel, float* out,
                  int64_t os, int cols, bool first, const float* bias) {
  __m256 acc[kRows][2];
#pragma GCC unroll 8
  for (int i = 0; i < kRows; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    __m256 b0 = _mm256_load_ps(panel), b1 = _mm256_load_ps(panel + 8);
    panel += kNr;
#pragma GCC unroll 8
    for (int i = 0; i < kRows; ++i) {
      __m256 a = _mm256_broadcast_ss(x + i * xs + k);
      acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
    }
  }
  // Spill the accumulators once, so the (branchy) epilogue cannot force them into memory inside
  // the k loop.
  alignas(32) float tile[kRows][kNr];
#pragma GCC unroll 8
  for (int i = 0; i < kRows; ++i) {
    _mm256_store_ps(tile[i], acc[i][0]);
    _mm256_store_ps(tile[i] + 8, acc[i][1]);
  }
  store_tile<kRows>(tile, out, os, cols, first, bias);
}

// The same product for up to 12 rows on AVX-512 (one zmm holds a panel row of 16 columns, so 12
// accumulators + 1 B fit, with x broadcast from memory into each FMA): twice the multiply-adds
// per FMA. x comes packed k-major, x[k * kMrAvx512 + i]: 12 rows of a row-major x lie a row
// stride apart (8-32 KiB at real widths), i.e. in one L1 set, and thrashed it (only +18 % over
// AVX2 unpacked, against +60-70 % packed). Compiled for AVX-512F by its target attribute alone,
// so the rest of hearth stays AVX2.
constexpr int kMrAvx512 = 12;

template <int kRows>
__attribute__((target("avx512f"))) void micro_kernel_avx512(int64_t kc, const float* xpack,
                                                            const float* panel, float* out,
                                                            int64_t os, int cols, bool first,
                                                            const float* bias) {
  __m512 acc[kRows];
#pragma GCC unroll 12
  for (int i = 0; i < kRows; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b = _mm512_load_ps(panel);
    panel += kNr;
#pragma GCC unroll 12
    for (int i = 0; i < kRows; ++i)
      acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(xpack[k * kMrAvx512 + i]), b, acc[i]);
  }
  alignas(64) float tile[kRows][kNr];
#pragma GCC unroll 12
  for (int i = 0; i < kRows; ++i) _mm512_store_ps(tile[i], acc[i]);
  store_tile<kRows>(tile, out, os, cols, first, bias);
}

// x[row .. row + rows) over [k0, k0 + kc) into xpack[k * kMrAvx512 + i] (rows <= kMrAvx512).
void pack_x_avx512(const MatmulArgs& a, int64_t row, int rows, int64_t k0, int64_t kc,
                   float* xpack) {
  for (int i = 0; i < rows; ++i) {
    const float* x = a.x + (row + i) * a.x_stride + k0;
    for (int64_t k = 0; k < kc; ++k) xpack[k * kMrAvx512 + i] = x[k];
  }
}

using KernelFn = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t, int, bool,
                          const float*);
constexpr KernelFn kKernels[kMr + 1] = {nullptr,         micro_kernel<1>, micro_kernel<2>,
                                        micro_kernel<3>, micro_kernel<4>, micro_kernel<5>,
                                        micro_kernel<6>};
using KernelAvx512Fn = void (*)(int64_t, const float*, const float*, float*, int64_t, int, bool,
                                const float*);
constexpr KernelAvx512Fn kKernelsAvx512[kMrAvx512 + 1] = {nullptr,
                                                          micro_kernel_avx512<1>,
                                                          micro_kernel_avx512<2>,
                                                          micro_kernel_avx512<3>,
                                                          micro_kernel_avx512<4>,
                                                          micro_kernel_avx512<5>,
                                                          micro_kernel_avx512<6>,
                                                          micro_kernel_avx512<7>,
                                                          micro_kernel_avx512<8>,
                                                          micro_kernel_avx512<9>,
                                                          micro_kernel_avx512<10>,
                                                          micro_kernel_avx512<11>,
                                                          micro_kernel_avx512<12>};

// Whether the GEMM takes the AVX-512 micro-kernel: the CPU has AVX-512F and HEARTH_CPU_AVX512 is
// not 0. On the Xeon VM a zmm FMA issues at 6.6 G/s per thread against 7.4 G/s for a ymm one:
// 1.8x the multiply-adds (on Zen 4, which splits zmm ops in two, about the same as AVX2).
bool use_avx512() {
  static const bool value = [] {
    const char* env = std::getenv("HEARTH_CPU_AVX512");
    if (env && std::string(env) == "0") return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return value;
}

// ---- driver -------------------------------------------------------------------------------------

template <typename W>
void pack_dense(const void* ctx, int64_t n0, int64_t rows, int64_t k0, int64_t kc, float* panel) {
  const MatmulArgs& a = *static_cast<const MatmulArgs*>(ctx);
  pack_panel(static_cast<const W*>(a.w), a.k, n0, rows, k0, kc, panel);
}

}  // namespace

GemmTasks plan_gemm_tasks(int64_t m, int64_t n, int64_t mr, int64_t nr, int64_t nc_max) {
  const int threads = ThreadPool::global().num_threads();
  GemmTasks t;
  t.nc = (n + 4 * threads - 1) / (4 * threads);
  t.nc = std::clamp<int64_t>((t.nc + nr - 1) / nr * nr, nr, nc_max);
  t.n_blocks = (n + t.nc - 1) / t.nc;
  t.m_split = t.n_blocks >= 2 * threads ? 1 : (2 * threads + t.n_blocks - 1) / t.n_blocks;
  t.m_per = (m + t.m_split - 1) / t.m_split;
  t.m_per = std::max<int64_t>(mr, (t.m_per + mr - 1) / mr * mr);
  t.m_split = (m + t.m_per - 1) / t.m_per;
  return t;
}

void gemm_packed(const MatmulArgs& a, PackPanelFn pack, const void* ctx) {
  const bool avx512 = use_avx512();
  const int mr = avx512 ? kMrAvx512 : kMr;
  const GemmTasks plan = plan_gemm_tasks(a.m, a.n, mr, kNr, kNcMax);
  ThreadPool::global().run(plan.count(), [&](int64_t task) {
    const auto [n0, n1, m0, m1] = plan.range(task, a.m, a.n);
    const int64_t panels = (n1 - n0 + kNr - 1) / kNr;
    AlignedArray<float> packed(size_t(panels * kKc * kNr));
    // AVX-512: the M block's x, packed per 12 rows (kMc is a multiple of 12).
    AlignedArray<float> xpack(avx512 ? size_t(kMc * kKc) : 1);
    for (int64_t pc = 0; pc < a.k; pc += kKc) {
      const int64_t kc = std::min(kKc, a.k - pc);
      for (int64_t p = 0; p < panels; ++p)
        pack(ctx, n0 + p * kNr, std::min<int64_t>(kNr, n1 - n0 - p * kNr), pc, kc,
             packed.p + p * kc * kNr);
      for (int64_t ic = m0; ic < m1; ic += kMc) {
        const int64_t mc = std::min(kMc, m1 - ic);
        if (avx512)
          for (int64_t ir = 0; ir < mc; ir += mr)
            pack_x_avx512(a, ic + ir, int(std::min<int64_t>(mr, mc - ir)), pc, kc,
                          xpack.p + ir * kc);
        for (int64_t p = 0; p < panels; ++p) {
          const int64_t col = n0 + p * kNr;
          const int cols = int(std::min<int64_t>(kNr, n1 - col));
          const float* panel = packed.p + p * kc * kNr;
          for (int64_t ir = 0; ir < mc; ir += mr) {
            const int rows = int(std::min<int64_t>(mr, mc - ir));
            const int64_t row = ic + ir;
            if (avx512)
              kKernelsAvx512[rows](kc, xpack.p + ir * kc, panel, a.out + row * a.out_stride + col,
                                   a.out_stride, cols, pc == 0, a.bias ? a.bias + col : nullptr);
            else
              kKernels[rows](kc, a.x + row * a.x_stride + pc, a.x_stride, panel,
                             a.out + row * a.out_stride + col, a.out_stride, cols, pc == 0,
                             a.bias ? a.bias + col : nullptr);
          }
        }
      }
    }
  });
}

void gemm(const MatmulArgs& a) {
  if (a.k == 0) {  // no K chunk would initialize the output
    for (int64_t i = 0; i < a.m; ++i)
      for (int64_t j = 0; j < a.n; ++j) a.out[i * a.out_stride + j] = a.bias ? a.bias[j] : 0.0f;
    return;
  }
  switch (a.w_dtype) {
    case DType::f32:
      return gemm_packed(a, pack_dense<float>, &a);
    case DType::f16:
      return gemm_packed(a, pack_dense<F16>, &a);
    case DType::bf16:
      return gemm_packed(a, pack_dense<BF16>, &a);
    default:
      HEARTH_CHECK(false, "gemm weight dtype {}", dtype_name(a.w_dtype));
  }
}

}  // namespace hearth::ops::cpu
