// CPU GEMV for decode (M <= kGemvMaxRows rows of x): out = x . w^T, reading each weight row once.
//
// Decode is bound by how fast the weights stream from memory, so the loop is built around the
// weight loads: kN weight rows advance together (kN independent accumulators per x row keep the
// FMA latency hidden and give the prefetchers a few steady streams), bf16/f16 are widened to f32
// in registers (shift / vcvtph2ps), and N is split into contiguous ranges, one per thread.
#include <algorithm>

#include "core/thread_pool.h"
#include "ops/cpu/matmul_internal.h"
#include "ops/cpu/simd.h"

namespace hearth::ops::cpu {
namespace {

// Weight bytes per thread below which the product runs on the calling thread (a pool wake-up
// costs about as much as streaming 64 KiB on the 2-core Zen dev VM).
constexpr int64_t kGemvMinBytesPerThread = 64 * 1024;
// Work chunks per thread (see gemv_rows).
constexpr int64_t kChunksPerThread = 8;

// Weight rows advanced together, by the number of x rows: 12 accumulators (of the 16 ymm
// registers) in every case. More rows in flight means more independent streams for the memory
// system; tuned on the 2-core AMD EPYC (Zen 4) dev VM, one thread, 64 x bf16 2048x2048 in turn:
// 4 rows 13.7 GB/s, 8 rows 15.4, 12 rows 18.3, 14 rows 16 (f32 18.8 / 22 / 24 / 23).
template <int kM>
constexpr int kRowsPerStep = kM == 1 ? 12 : (kM == 2 ? 6 : (kM == 3 ? 4 : 3));  // kM >= 4: 3

template <typename W, int kM, int kN>
inline void gemv_tile(const MatmulArgs& a, const W* w, int64_t n0) {
  const int64_t k = a.k;
  __m256 acc[kM][kN];
  for (int i = 0; i < kM; ++i)
    for (int j = 0; j < kN; ++j) acc[i][j] = _mm256_setzero_ps();
  const W* wr[kN];
  for (int j = 0; j < kN; ++j) wr[j] = w + (n0 + j) * k;
  const float* xr[kM];
  for (int i = 0; i < kM; ++i) xr[i] = a.x + i * a.x_stride;
  int64_t p = 0;
  for (; p + kLanes <= k; p += kLanes) {
    __m256 xv[kM];
    for (int i = 0; i < kM; ++i) xv[i] = _mm256_loadu_ps(xr[i] + p);
    for (int j = 0; j < kN; ++j) {
      __m256 wv = load8(wr[j] + p);
      for (int i = 0; i < kM; ++i) acc[i][j] = _mm256_fmadd_ps(wv, xv[i], acc[i][j]);
    }
  }
  if (p < k) {
    int rest = int(k - p);
    __m256 xv[kM];
    for (int i = 0; i < kM; ++i) xv[i] = load_partial(xr[i] + p, rest);
    for (int j = 0; j < kN; ++j) {
      __m256 wv = load_partial(wr[j] + p, rest);
      for (int i = 0; i < kM; ++i) acc[i][j] = _mm256_fmadd_ps(wv, xv[i], acc[i][j]);
    }
  }
  for (int i = 0; i < kM; ++i) {
    float* o = a.out + i * a.out_stride + n0;
    for (int j = 0; j < kN; ++j) o[j] = hsum(acc[i][j]) + (a.bias ? a.bias[n0 + j] : 0.0f);
  }
}

// One x row: each thread walks its rows one after the other, so consecutive weight rows form a
// single sequential stream per thread, which the hardware prefetchers follow best. Measured on the
// 2-core Zen 4 dev VM (dev/kernels/gemv_bf16.cpp, bf16 28680 x 2048 from a file mapping, both
// threads, six interleaved rounds): 29-34 GB/s against 23-26 GB/s for 12 rows in flight.
// Bytes ahead of its reads that gemv_row prefetches the weights, by CPU vendor. On the 2-vCPU
// Intel Xeon (Sapphire Rapids family) CI-class VM the hardware prefetchers alone left one
// sequential stream per thread at 56-61 % (bf16) / 71-77 % (f32) of the read probe; 1 KiB ahead
// gave 63-68 / 82-88 %, 2 KiB 64-68 / 85-90 %, 4 KiB 62 / 86-87 % (op_bench --only gemv --quick,
// 2048 x 2048 and 8192 x 2048). On the Zen 4 VM, software prefetch 256-2048 B ahead made the
// same stream slower (18-27 GB/s against 29-34), so AMD CPUs prefetch nothing.
const int64_t kGemvPrefetchAhead = [] {
  __builtin_cpu_init();
  return __builtin_cpu_is("intel") ? int64_t(2048) : int64_t(0);
}();

template <typename W>
inline void gemv_row(const MatmulArgs& a, const W* w, int64_t n) {
  const int64_t k = a.k;
  const W* wr = w + n * k;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  const int64_t ahead = kGemvPrefetchAhead;
  int64_t p = 0;
  for (; p + 4 * kLanes <= k; p += 4 * kLanes) {
    if (ahead) {  // one line per iteration (bf16: 64 bytes; f32: two lines)
      const char* q = reinterpret_cast<const char*>(wr + p) + ahead;
      _mm_prefetch(q, _MM_HINT_T0);
      if constexpr (sizeof(W) == 4) _mm_prefetch(q + 64, _MM_HINT_T0);
    }
    acc0 = _mm256_fmadd_ps(load8(wr + p), _mm256_loadu_ps(a.x + p), acc0);
    acc1 = _mm256_fmadd_ps(load8(wr + p + kLanes), _mm256_loadu_ps(a.x + p + kLanes), acc1);
    acc2 = _mm256_fmadd_ps(load8(wr + p + 2 * kLanes), _mm256_loadu_ps(a.x + p + 2 * kLanes), acc2);
    acc3 = _mm256_fmadd_ps(load8(wr + p + 3 * kLanes), _mm256_loadu_ps(a.x + p + 3 * kLanes), acc3);
  }
  for (; p + kLanes <= k; p += kLanes)
    acc0 = _mm256_fmadd_ps(load8(wr + p), _mm256_loadu_ps(a.x + p), acc0);
  if (p < k) {
    int rest = int(k - p);
    acc1 = _mm256_fmadd_ps(load_partial(wr + p, rest), load_partial(a.x + p, rest), acc1);
  }
  __m256 sum = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
  a.out[n] = hsum(sum) + (a.bias ? a.bias[n] : 0.0f);
}

template <typename W>
void gemv_one_row_of_x(const MatmulArgs& a) {
  const W* w = static_cast<const W*>(a.w);
  const int64_t row_bytes = a.k * int64_t(sizeof(W));
  const int64_t grain =
      std::max<int64_t>(1, kGemvMinBytesPerThread / std::max<int64_t>(row_bytes, 1));
  const int threads = ThreadPool::global().num_threads();
  const int64_t chunks = std::min<int64_t>((a.n + grain - 1) / grain, kChunksPerThread * threads);
  const int64_t per_chunk = (a.n + chunks - 1) / chunks;
  ThreadPool::global().run(chunks, [&](int64_t chunk) {
    const int64_t n0 = chunk * per_chunk, n1 = std::min(a.n, n0 + per_chunk);
    for (int64_t n = n0; n < n1; ++n) gemv_row(a, w, n);
  });
}

// x rows are taken 4 at a time (kGemvGroup); more than 4 rows reuse each tile of weight rows from
// L1 for every group, so the weights still stream from memory once.
constexpr int64_t kGemvGroup = 4;

template <typename W, int kN>
void gemv_tile_all_rows(const MatmulArgs& a, const W* w, int64_t n0) {
  for (int64_t m0 = 0; m0 < a.m; m0 += kGemvGroup) {
    MatmulArgs g = a;
    g.x = a.x + m0 * a.x_stride;
    g.out = a.out + m0 * a.out_stride;
    switch (std::min<int64_t>(kGemvGroup, a.m - m0)) {
      case 1:
        gemv_tile<W, 1, kN>(g, w, n0);
        break;
      case 2:
        gemv_tile<W, 2, kN>(g, w, n0);
        break;
      case 3:
        gemv_tile<W, 3, kN>(g, w, n0);
        break;
      default:
        gemv_tile<W, 4, kN>(g, w, n0);
        break;
    }
  }
}

template <typename W, int kM>
void gemv_rows(const MatmulArgs& a) {
  constexpr int kN = kRowsPerStep<kM>;
  const W* w = static_cast<const W*>(a.w);
  const int64_t groups = (a.n + kN - 1) / kN;
  const int64_t bytes_per_group = kN * a.k * int64_t(sizeof(W));
  const int64_t grain =
      std::max<int64_t>(1, kGemvMinBytesPerThread / std::max<int64_t>(bytes_per_group, 1));
  // Contiguous chunks of row groups, several per thread and claimed dynamically: on a shared
  // machine a thread that loses its core for a while does not hold the others up.
  const int threads = ThreadPool::global().num_threads();
  const int64_t chunks =
      std::min<int64_t>((groups + grain - 1) / grain, kChunksPerThread * threads);
  const int64_t per_chunk = (groups + chunks - 1) / chunks;
  ThreadPool::global().run(chunks, [&](int64_t chunk) {
    const int64_t g0 = chunk * per_chunk, g1 = std::min(groups, g0 + per_chunk);
    for (int64_t g = g0; g < g1; ++g) {
      int64_t n0 = g * kN;
      if (n0 + kN <= a.n) {
        if constexpr (kM <= kGemvGroup)
          gemv_tile<W, kM, kN>(a, w, n0);
        else
          gemv_tile_all_rows<W, kN>(a, w, n0);
      } else {
        for (int64_t n = n0; n < a.n; ++n) {
          if constexpr (kM <= kGemvGroup)
            gemv_tile<W, kM, 1>(a, w, n);
          else
            gemv_tile_all_rows<W, 1>(a, w, n);
        }
      }
    }
  });
}

template <typename W>
void gemv_typed(const MatmulArgs& a) {
  switch (a.m) {
    case 1:
      return gemv_one_row_of_x<W>(a);
    case 2:
      return gemv_rows<W, 2>(a);
    case 3:
      return gemv_rows<W, 3>(a);
    case 4:
      return gemv_rows<W, 4>(a);
    default:
      return gemv_rows<W, kGemvMaxRows>(a);  // 5..kGemvMaxRows, 4 x rows at a time
  }
}

}  // namespace

void gemv(const MatmulArgs& a) {
  switch (a.w_dtype) {
    case DType::f32:
      return gemv_typed<float>(a);
    case DType::f16:
      return gemv_typed<F16>(a);
    case DType::bf16:
      return gemv_typed<BF16>(a);
    default:
      HEARTH_CHECK(false, "gemv weight dtype {}", dtype_name(a.w_dtype));
  }
}

}  // namespace hearth::ops::cpu
