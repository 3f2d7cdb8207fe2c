// Shared by the CPU quantized kernels (quantize.cpp, qgemv.cpp, qmatmul.cpp): a raw view of an
// MLX affine-quantized matrix and the 8-code unpacking step every kernel builds on.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>
#include <vector>

#include "ops/cpu/matmul_internal.h"
#include "ops/cpu/simd.h"
#include "ops/quantized.h"

namespace hearth::ops::cpu {

// Raw pointers into a validated QuantizedWeight. Each row of `packed` is a little-endian bit
// stream: code k occupies bits [k * bits, (k + 1) * bits). Every group starts on a byte (a group
// of >= 32 codes is a whole number of bytes), and so does every run of 8 codes (8 * bits bits
// = `bits` bytes), which is the unit the kernels unpack.
struct QuantView {
  const uint8_t* packed = nullptr;
  const void* scales = nullptr;  // [n, k / group_size], dtype scale_dtype
  const void* biases = nullptr;
  DType scale_dtype = DType::f32;
  int bits = 4;
  int group_size = 64;
  int64_t n = 0, k = 0;
  int64_t row_bytes = 0;  // k * bits / 8
  int64_t groups = 0;     // k / group_size

  explicit QuantView(const QuantizedWeight& w)
      : packed(static_cast<const uint8_t*>(w.packed.raw_data())),
        scales(w.scales.raw_data()),
        biases(w.biases.raw_data()),
        scale_dtype(w.scales.dtype()),
        bits(w.bits),
        group_size(w.group_size),
        n(w.rows()),
        k(w.cols()),
        row_bytes(w.packed.dim(1) * 4),
        groups(w.cols() / w.group_size) {}
  const uint8_t* row(int64_t r) const { return packed + r * row_bytes; }
};

template <typename S>
inline float scalar_f32(const S* p, int64_t i) {
  if constexpr (std::is_same_v<S, float>)
    return p[i];
  else if constexpr (std::is_same_v<S, BF16>)
    return bf16_to_f32(p[i]);
  else
    return f16_to_f32(p[i]);
}

// Codes c * 8 .. c * 8 + 7 of a row as eight 32-bit lanes. Reads exactly kBits bytes (never past
// the row). Lanes 0-3 come from the stream's first 32 bits, lanes 4-7 from the 32 bits starting
// at code 4; a per-lane variable shift and a mask then isolate each code.
template <int kBits>
inline __m256i unpack8(const uint8_t* row, int64_t c) {
  const uint8_t* p = row + c * kBits;
  if constexpr (kBits == 8) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  } else {
    uint64_t v = 0;
    std::memcpy(&v, p, kBits);
    const __m128i lo = _mm_set1_epi32(int(uint32_t(v)));
    const __m128i hi = _mm_set1_epi32(int(uint32_t(v >> (4 * kBits))));
    const __m256i shifts =
        _mm256_setr_epi32(0, kBits, 2 * kBits, 3 * kBits, 0, kBits, 2 * kBits, 3 * kBits);
    return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set_m128i(hi, lo), shifts),
                            _mm256_set1_epi32((1 << kBits) - 1));
  }
}

template <int kBits>
inline __m256 unpack8_f32(const uint8_t* row, int64_t c) {
  return _mm256_cvtepi32_ps(unpack8<kBits>(row, c));
}

// Calls fn.template operator()<kBits>() for the runtime bit width.
template <typename Fn>
inline void dispatch_bits(int bits, Fn&& fn) {
  switch (bits) {
    case 2:
      return fn.template operator()<2>();
    case 3:
      return fn.template operator()<3>();
    case 4:
      return fn.template operator()<4>();
    case 5:
      return fn.template operator()<5>();
    case 6:
      return fn.template operator()<6>();
    case 8:
      return fn.template operator()<8>();
    default:
      HEARTH_CHECK(false, "quantized bits {}", bits);
  }
}

// Calls fn.template operator()<S>() for the runtime scale dtype (float, F16 or BF16).
template <typename Fn>
inline void dispatch_scale(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::f32:
      return fn.template operator()<float>();
    case DType::f16:
      return fn.template operator()<F16>();
    case DType::bf16:
      return fn.template operator()<BF16>();
    default:
      HEARTH_CHECK(false, "quantized scale dtype {}", dtype_name(dtype));
  }
}

// Products with quantized weights (qgemv.cpp / qmatmul.cpp). x/out/bias as in MatmulArgs
// (a.w unused); m <= kGemvMaxRows for the GEMV.
void quantized_gemv(const MatmulArgs& a, const QuantView& w);
void quantized_gemm(const MatmulArgs& a, const QuantView& w);

// MatmulPrecision::bf16 (ops/precision.h): x rows rounded to int16 per quantization group,
// xq[m, k] = round-half-even(x * (32767 / amax)) with amax the group's largest |x|,
// step[m, g] = amax / 32767 (x ~= xq * step) and xsum[m, g] = step * the group's sum of xq.
// Every group size is a multiple of 16.
void round_x_int16_rows(const MatmulArgs& a, const QuantView& w, int16_t* xq, float* step,
                        float* xsum);
// How far ahead of its reads the GEMV prefetches the codes (rows are contiguous, so past a row's
// end this is the next row's start). Without it the 2-vCPU Intel Xeon CI-class VM streamed 4-bit
// codes at 45 % of its read bandwidth in the int16 path and 18 % in the f32 one (the kernels'
// compute and the DRAM latency did not overlap: 27 G codes/s per thread from L2, 12 from DRAM);
// int16 path, 512 bytes ahead: 45-56 %, 1 KiB 58-62 %, 2 KiB 70-71 %, 4-8 KiB 67-68 % (op_bench
// --only qgemv, two threads, 8960 x 1536 and 1536 x 8960); the f32 paths at 2 KiB: 4-bit 46 %,
// 8-bit 68 % of a decode step (op_bench --only qmodel; 18 % and 33 % without).
inline constexpr int64_t kQGemvPrefetchAhead = 2048;
// Weight rows that share one stream of several x rows from L2 in the GEMVs: each group of x rows
// serves a tile from L1 instead of one row, so the x rows (16 of K = 8960 are 287 KB in f32,
// 143 KB in int16) stream from L2 once per tile, not once per weight row.
inline constexpr int64_t kQGemvWeightTile = 8;

// The int16 GEMVs' x (qgemv.cpp): rows rounded per group as round_x_int16_rows does (step and
// xsum resized to [m, groups]), permuted into a kernel's lane order: per block of `lanes` 16-bit
// lanes of codes (16 / bits codes each), plane j holds the x of code j of every lane. The group
// sums are those of the rounded x, so that the product is exactly W times a rounded x (the bias
// terms' weight, b, is not centred like s * q + b is, so pairing it with the unrounded sum would
// add an error of its own). xq has room for m * k values, 64-byte aligned so that the kernels'
// loads never straddle a cache line (a split load costs a second L1 access on Intel cores).
void round_x_int16_lanes(const MatmulArgs& a, const QuantView& w, int lanes, int16_t* xq,
                         std::vector<float>& step, std::vector<float>& xsum);
// Runs rows(n0, n1) over the weight rows on the thread pool in contiguous ranges (one sequential
// stream of codes per task), as the quantized GEMVs split their work.
void for_row_ranges(const QuantView& w, const std::function<void(int64_t, int64_t)>& rows);

// The int16 GEMV on AVX512-VNNI (qgemv_vnni.cpp): 4 or 8 bits, K a whole number of 64-byte code
// blocks; false (nothing done) otherwise or where cpu_vnni() is not avx512.
bool quantized_gemv_vnni(const MatmulArgs& a, const QuantView& w);
// The GEMM over int16 x on VNNI (qgemm_int16.cpp); false (nothing done) where cpu_vnni() is none.
bool quantized_gemm_int16(const MatmulArgs& a, const QuantView& w);
// Which vpdpwssd kernel quantized_gemm_int16 uses here: AVX512-VNNI (zmm, 12 x 16) when the CPU
// has it, else AVX-VNNI (ymm, 4 x 16), else none. HEARTH_CPU_VNNI=none|avx|avx512 picks one (a
// missing extension gives none), to test each path on one machine.
enum class CpuVnni { none, avx, avx512 };
CpuVnni cpu_vnni();

}  // namespace hearth::ops::cpu
