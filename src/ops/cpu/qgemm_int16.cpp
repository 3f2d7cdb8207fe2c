// CPU GEMM with MLX affine-quantized weights and x rounded to int16 per group, on VNNI
// (vpdpwssd: pairwise int16 multiply-adds into int32 lanes). Taken by prefill under
// MatmulPrecision::bf16 on CPUs with AVX512-VNNI (Intel since Cascade Lake, AMD Zen 4: a zmm
// kernel, 12 x 16) or AVX-VNNI (Intel Alder Lake client parts, AMD Zen 5: a ymm kernel, 4 x 16);
// the f32 GEMM of qmatmul.cpp otherwise. On the Xeon VM a zmm vpdpwssd issues at 6.2 G/s per
// thread, a ymm one at 3.3 G/s and a ymm FMA at 7.4 G/s (docs/perf/cpu_ops.md).
//
// For group g of row n (scale s, bias b) and row m of x:
//   out[m, n] += s * step[m, g] * sum_{k in g} q[n, k] * xq[m, k] + b * xsum[m, g]
// with xq, step and xsum as round_x_int16_rows gives them: each group's integer dot is exact,
// then scaled once. Blocking as in gemm.cpp: per task a block of N columns; per K chunk of kKc
// the block's 16-column panels are unpacked to int16 code pairs, panel[p][j] =
// (q[n0 + j, 2p], q[n0 + j, 2p + 1]) as one 32-bit element, with f32 scales and biases per group;
// the micro-kernels broadcast an x pair per row and run vpdpwssd per row and pair, flushing their
// int32 accumulators into an f32 tile at the end of every group.
#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "ops/cpu/quantized_internal.h"

namespace hearth::ops::cpu {
namespace {

// x rows per micro-kernel: 8 accumulators + 2 B + 1 A (6 rows measured the same, with spills).
constexpr int kMr = 4;
constexpr int kNr = 16;          // columns per panel (two ymm of 8 int32 lanes)
constexpr int64_t kKc = 512;     // K chunk: a panel is kKc / 2 * 64 B = 16 KiB (L1)
constexpr int64_t kMc = 192;     // x rows per block: 192 * kKc * 2 B = 192 KiB (L2)
constexpr int64_t kNcMax = 256;  // columns per task

// One K chunk of a 16-column panel: code pairs [kc / 2][16] (int32 each) and per group of the
// chunk the scales and biases of the 16 columns (0 past N, so those columns come out 0).
struct Panel {
  int32_t* pairs;
  float* scales;  // [kc / group_size][16]
  float* biases;
};

template <typename S, int kBits>
void pack_panel(const QuantView& w, int64_t n0, int64_t rows, int64_t k0, int64_t kc,
                int32_t* scratch /* [16][kc / 2] */, const Panel& out) {
  const int64_t pairs = kc / 2;
  // Codes k, k + 1 of a row into one 32-bit pair: per 8 codes, 64-bit lanes hold (q[2p], q[2p+1])
  // as two 32-bit values; or-ing in the lane shifted right by 16 puts q[2p+1] at bit 16.
  const __m256i gather_low = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
  for (int j = 0; j < kNr; ++j) {
    int32_t* dst = scratch + j * pairs;
    if (j >= rows) {
      std::fill(dst, dst + pairs, 0);
      continue;
    }
    const uint8_t* row = w.row(n0 + j);
    for (int64_t c = 0; c < kc / kLanes; ++c) {
      const __m256i v = unpack8<kBits>(row, (k0 / kLanes) + c);
      const __m256i t = _mm256_or_si256(v, _mm256_srli_epi64(v, 16));
      const __m256i packed = _mm256_permutevar8x32_epi32(t, gather_low);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + c * 4), _mm256_castsi256_si128(packed));
    }
  }
  // [16][pairs] -> [pairs][16], 8 x 8 blocks of 32-bit elements.
  for (int64_t p = 0; p < pairs; p += 8)
    for (int half = 0; half < 2; ++half) {
      __m256 r[8];
      for (int j = 0; j < 8; ++j)
        r[j] =
            _mm256_loadu_ps(reinterpret_cast<const float*>(scratch + (half * 8 + j) * pairs + p));
      transpose8(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
      for (int t = 0; t < 8; ++t)
        _mm256_storeu_ps(reinterpret_cast<float*>(out.pairs + (p + t) * kNr + half * 8), r[t]);
    }
  const S* scales = static_cast<const S*>(w.scales);
  const S* biases = static_cast<const S*>(w.biases);
  for (int64_t gl = 0; gl < kc / w.group_size; ++gl) {
    const int64_t g = k0 / w.group_size + gl;
    for (int j = 0; j < kNr; ++j) {
      const bool valid = j < rows;
      out.scales[gl * kNr + j] = valid ? scalar_f32(scales, (n0 + j) * w.groups + g) : 0.0f;
      out.biases[gl * kNr + j] = valid ? scalar_f32(biases, (n0 + j) * w.groups + g) : 0.0f;
    }
  }
}

// The int16 rows of x and their per-group steps and sums (round_x_int16_rows).
struct XRows {
  const int16_t* xq;  // [m, k]
  const float* step;  // [m, groups]
  const float* xsum;
  int64_t k, groups;
};

// out rows [row, row + kRows) x columns [col, col + cols) += this K chunk's products. The first
// chunk (k0 == 0) starts from the bias. AVX-VNNI (ymm); called only where the CPU has it.
template <int kRows>
__attribute__((target("avx2,fma,avxvnni"))) void micro_kernel(const XRows& x, int64_t row,
                                                              int64_t k0, int64_t kc,
                                                              int group_size, const Panel& panel,
                                                              float* out, int64_t os, int cols,
                                                              const float* bias) {
  alignas(32) float tile[kRows][kNr];
  for (int i = 0; i < kRows; ++i)
    for (int j = 0; j < kNr; ++j)
      tile[i][j] = j >= cols ? 0.0f : k0 == 0 ? (bias ? bias[j] : 0.0f) : out[i * os + j];
  const int16_t* xr[kRows];
  for (int i = 0; i < kRows; ++i) xr[i] = x.xq + (row + i) * x.k + k0;
  const int64_t groups = kc / group_size, pairs_per_group = group_size / 2;
  for (int64_t gl = 0; gl < groups; ++gl) {
    __m256i acc[kRows][2];
    for (int i = 0; i < kRows; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
    const int32_t* b = panel.pairs + gl * pairs_per_group * kNr;
    const int64_t kx = gl * group_size;
    // Two pairs per iteration measured best (4-bit 1B prefill: none 97, 2: 120, 4: 108 tok/s).
#pragma GCC unroll 2
    for (int64_t p = 0; p < pairs_per_group; ++p) {
      const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + p * kNr));
      const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + p * kNr + 8));
      for (int i = 0; i < kRows; ++i) {
        int32_t pair;
        std::memcpy(&pair, xr[i] + kx + 2 * p, 4);
        const __m256i a = _mm256_set1_epi32(pair);
        acc[i][0] = _mm256_dpwssd_avx_epi32(acc[i][0], a, b0);
        acc[i][1] = _mm256_dpwssd_avx_epi32(acc[i][1], a, b1);
      }
    }
    // Spill the accumulators once, so that the flush below cannot keep them in memory inside
    // the pair loop (GCC did, at a third of the speed; as in gemm.cpp).
    alignas(32) int32_t sums[kRows][2][kLanes];
#pragma GCC unroll 8
    for (int i = 0; i < kRows; ++i) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(sums[i][0]), acc[i][0]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(sums[i][1]), acc[i][1]);
    }
    const int64_t g = k0 / group_size + gl;
    const __m256 s0 = _mm256_load_ps(panel.scales + gl * kNr);
    const __m256 s1 = _mm256_load_ps(panel.scales + gl * kNr + 8);
    const __m256 c0 = _mm256_load_ps(panel.biases + gl * kNr);
    const __m256 c1 = _mm256_load_ps(panel.biases + gl * kNr + 8);
    for (int i = 0; i < kRows; ++i) {
      const __m256 step = _mm256_set1_ps(x.step[(row + i) * x.groups + g]);
      const __m256 xs = _mm256_set1_ps(x.xsum[(row + i) * x.groups + g]);
      __m256 t0 = _mm256_load_ps(tile[i]), t1 = _mm256_load_ps(tile[i] + 8);
      const __m256i a0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(sums[i][0]));
      const __m256i a1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(sums[i][1]));
      t0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a0), _mm256_mul_ps(s0, step), t0);
      t1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a1), _mm256_mul_ps(s1, step), t1);
      _mm256_store_ps(tile[i], _mm256_fmadd_ps(c0, xs, t0));
      _mm256_store_ps(tile[i] + 8, _mm256_fmadd_ps(c1, xs, t1));
    }
  }
  for (int i = 0; i < kRows; ++i)
    for (int j = 0; j < cols; ++j) out[i * os + j] = tile[i][j];
}

using KernelFn = void (*)(const XRows&, int64_t, int64_t, int64_t, int, const Panel&, float*,
                          int64_t, int, const float*);
constexpr KernelFn kKernels[kMr + 1] = {nullptr, micro_kernel<1>, micro_kernel<2>, micro_kernel<3>,
                                        micro_kernel<4>};

// The AVX512-VNNI kernel: a zmm holds a whole panel row (16 columns of int32), so one vpdpwssd
// per x row and pair, 12 rows per call (12 int32 + 12 f32 accumulators in the 32 registers). x
// comes packed per 12 rows, xpack[pair * 12 + i] (a row stride apart, 12 rows share an L1 set).
// On the Xeon VM a zmm vpdpwssd issues at 6.2 G/s per thread against 3.3 G/s for the ymm AVX-VNNI
// form: 3.7x the multiply-adds.
constexpr int kMrZmm = 12;

// GCC 12's _mm512_cvtepi32_ps starts from _mm512_undefined_ps(), which -Wmaybe-uninitialized
// reports as uninitialized (a known false positive of its headers).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
template <int kRows>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void micro_kernel_zmm(
    const XRows& x, const int32_t* xpack, int64_t row, int64_t k0, int64_t kc, int group_size,
    const Panel& panel, float* out, int64_t os, int cols, const float* bias) {
  // The f32 tile starts from out (or the bias on the first chunk), columns past cols at 0;
  // written with vector stores (scalar stores then a zmm load would stall store forwarding).
  alignas(64) float tile[kRows][kNr];
  const __mmask16 valid = __mmask16((1u << cols) - 1);
  for (int i = 0; i < kRows; ++i) {
    const __m512 init = k0 != 0 ? _mm512_maskz_loadu_ps(valid, out + i * os)
                        : bias  ? _mm512_maskz_loadu_ps(valid, bias)
                                : _mm512_setzero_ps();
    _mm512_store_ps(tile[i], init);
  }
  const int64_t groups = kc / group_size, pairs_per_group = group_size / 2;
  for (int64_t gl = 0; gl < groups; ++gl) {
    __m512i acc[kRows];
#pragma GCC unroll 12
    for (int i = 0; i < kRows; ++i) acc[i] = _mm512_setzero_si512();
    const int32_t* b = panel.pairs + gl * pairs_per_group * kNr;
    const int32_t* xp = xpack + gl * pairs_per_group * kMrZmm;
    for (int64_t p = 0; p < pairs_per_group; ++p) {
      const __m512i bv = _mm512_load_si512(b + p * kNr);
#pragma GCC unroll 12
      for (int i = 0; i < kRows; ++i)  // acc[i] += bv . broadcast(x pair), in place
        asm("vpdpwssd %[x]%{1to16%}, %[b], %[acc]"
            : [acc] "+v"(acc[i])
            : [b] "v"(bv), [x] "m"(xp[p * kMrZmm + i]));
    }
    // Spill the accumulators once (as the ymm kernel does): the flush reading them in place kept
    // GCC copying every accumulator around each vpdpwssd.
    alignas(64) int32_t sums[kRows][kNr];
#pragma GCC unroll 12
    for (int i = 0; i < kRows; ++i) _mm512_store_si512(sums[i], acc[i]);
    const int64_t g = k0 / group_size + gl;
    const __m512 sv = _mm512_load_ps(panel.scales + gl * kNr);
    const __m512 cv = _mm512_load_ps(panel.biases + gl * kNr);
    for (int i = 0; i < kRows; ++i) {
      const __m512 step = _mm512_set1_ps(x.step[(row + i) * x.groups + g]);
      const __m512 xs = _mm512_set1_ps(x.xsum[(row + i) * x.groups + g]);
      __m512 t = _mm512_load_ps(tile[i]);
      t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(sums[i])), _mm512_mul_ps(sv, step),
                          t);
      _mm512_store_ps(tile[i], _mm512_fmadd_ps(cv, xs, t));
    }
  }
  for (int i = 0; i < kRows; ++i)
    _mm512_mask_storeu_ps(out + i * os, valid, _mm512_load_ps(tile[i]));
}

#pragma GCC diagnostic pop

using KernelZmmFn = void (*)(const XRows&, const int32_t*, int64_t, int64_t, int64_t, int,
                             const Panel&, float*, int64_t, int, const float*);
constexpr KernelZmmFn kKernelsZmm[kMrZmm + 1] = {nullptr,
                                                 micro_kernel_zmm<1>,
                                                 micro_kernel_zmm<2>,
                                                 micro_kernel_zmm<3>,
                                                 micro_kernel_zmm<4>,
                                                 micro_kernel_zmm<5>,
                                                 micro_kernel_zmm<6>,
                                                 micro_kernel_zmm<7>,
                                                 micro_kernel_zmm<8>,
                                                 micro_kernel_zmm<9>,
                                                 micro_kernel_zmm<10>,
                                                 micro_kernel_zmm<11>,
                                                 micro_kernel_zmm<12>};

// x rows [row, row + rows) over [k0, k0 + kc) as pairs, xpack[pair * kMrZmm + i].
void pack_x_pairs(const XRows& x, int64_t row, int rows, int64_t k0, int64_t kc, int32_t* xpack) {
  for (int i = 0; i < rows; ++i) {
    const int16_t* xr = x.xq + (row + i) * x.k + k0;
    for (int64_t p = 0; p < kc / 2; ++p) std::memcpy(xpack + p * kMrZmm + i, xr + 2 * p, 4);
  }
}

template <typename S, int kBits>
void gemm_typed(const MatmulArgs& a, const QuantView& w, const XRows& x, bool zmm) {
  const int64_t mr = zmm ? kMrZmm : kMr;
  const GemmTasks plan = plan_gemm_tasks(a.m, a.n, mr, kNr, kNcMax);
  // K chunks hold whole groups (kKc is a multiple of every group size).
  ThreadPool::global().run(plan.count(), [&](int64_t task) {
    const auto [n0, n1, m0, m1] = plan.range(task, a.m, a.n);
    const int64_t panels = (n1 - n0 + kNr - 1) / kNr;
    const int64_t groups_per_chunk = kKc / w.group_size;
    AlignedArray<int32_t> pairs(size_t(panels * kKc / 2 * kNr));
    AlignedArray<float> meta(size_t(panels * groups_per_chunk * kNr * 2));
    AlignedArray<int32_t> scratch(size_t(kNr * kKc / 2));
    AlignedArray<int32_t> xpack(zmm ? size_t(kMc * kKc / 2) : 1);  // kMc: a multiple of kMrZmm
    for (int64_t pc = 0; pc < a.k; pc += kKc) {
      const int64_t kc = std::min(kKc, a.k - pc);
      auto panel_at = [&](int64_t p) {
        float* m = meta.p + p * groups_per_chunk * kNr * 2;
        return Panel{pairs.p + p * (kKc / 2) * kNr, m, m + groups_per_chunk * kNr};
      };
      for (int64_t p = 0; p < panels; ++p)
        pack_panel<S, kBits>(w, n0 + p * kNr, std::min<int64_t>(kNr, n1 - n0 - p * kNr), pc, kc,
                             scratch.p, panel_at(p));
      for (int64_t ic = m0; ic < m1; ic += kMc) {
        const int64_t mc = std::min(kMc, m1 - ic);
        int32_t* xp = xpack.p;
        if (zmm)
          for (int64_t ir = 0; ir < mc; ir += mr)
            pack_x_pairs(x, ic + ir, int(std::min(mr, mc - ir)), pc, kc, xp + ir * kc / 2);
        for (int64_t p = 0; p < panels; ++p) {
          const int64_t col = n0 + p * kNr;
          const int cols = int(std::min<int64_t>(kNr, n1 - col));
          for (int64_t ir = 0; ir < mc; ir += mr) {
            const int rows = int(std::min(mr, mc - ir));
            const int64_t row = ic + ir;
            float* out = a.out + row * a.out_stride + col;
            const float* bias = a.bias ? a.bias + col : nullptr;
            if (zmm)
              kKernelsZmm[rows](x, xp + ir * kc / 2, row, pc, kc, w.group_size, panel_at(p), out,
                                a.out_stride, cols, bias);
            else
              kKernels[rows](x, row, pc, kc, w.group_size, panel_at(p), out, a.out_stride, cols,
                             bias);
          }
        }
      }
    }
  });
}

}  // namespace

CpuVnni cpu_vnni() {
  static const CpuVnni value = [] {
    __builtin_cpu_init();
    const bool avx = __builtin_cpu_supports("avxvnni") != 0;
    const bool avx512 = __builtin_cpu_supports("avx512vnni") != 0 &&
                        __builtin_cpu_supports("avx512bw") != 0 &&
                        __builtin_cpu_supports("avx512f") != 0;
    const char* env = std::getenv("HEARTH_CPU_VNNI");
    const std::string want = env ? env : "";
    if (want == "none") return CpuVnni::none;
    if (want == "avx512") return avx512 ? CpuVnni::avx512 : CpuVnni::none;
    if (want == "avx") return avx ? CpuVnni::avx : CpuVnni::none;
    return avx512 ? CpuVnni::avx512 : avx ? CpuVnni::avx : CpuVnni::none;
  }();
  return value;
}

bool quantized_gemm_int16(const MatmulArgs& a, const QuantView& w) {
  const CpuVnni vnni = cpu_vnni();
  if (vnni == CpuVnni::none) return false;
  std::vector<int16_t> xq(size_t(a.m * a.k));
  std::vector<float> step(size_t(a.m * w.groups)), xsum(step.size());
  round_x_int16_rows(a, w, xq.data(), step.data(), xsum.data());
  const XRows x{xq.data(), step.data(), xsum.data(), a.k, w.groups};
  dispatch_scale(w.scale_dtype, [&]<typename S>() {
    dispatch_bits(w.bits,
                  [&]<int kBits>() { gemm_typed<S, kBits>(a, w, x, vnni == CpuVnni::avx512); });
  });
  return true;
}

}  // namespace hearth::ops::cpu
