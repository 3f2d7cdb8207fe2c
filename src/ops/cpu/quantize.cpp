// CPU MLX affine quantize / dequantize / quantized embedding gather, parallel over rows.
//
// Bit-identical to MLX (docs/ops.md): every step is the single f32 operation MLX performs, in the
// same order; vector division and rounding are IEEE-exact like their scalar forms, so 8 lanes at
// a time give the same bits as MLX's scalar loop. Built with -ffp-contract=off (src/CMakeLists.txt)
// so the compiler cannot fuse a multiply and an add into one rounding.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/thread_pool.h"
#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/quantized_internal.h"

namespace hearth::ops::cpu {
namespace {

// Rows per task: enough work (~16K elements) to be worth a pool wake-up.
int64_t row_grain(int64_t k) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(k, 1));
}

// ---- quantize -----------------------------------------------------------------------------------

// Round to nearest, halfway cases away from zero (Metal/CUDA `round`), exactly: the fraction
// v - trunc(v) is exact in f32.
inline __m256 round_half_away(__m256 v) {
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0f));
  const __m256 frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
  const __m256 step = _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ),
                                    _mm256_or_ps(_mm256_set1_ps(1.0f), sign));
  return _mm256_add_ps(t, step);
}

inline float hmin(__m256 v) {
  __m128 s = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_min_ps(s, _mm_movehl_ps(s, s));
  s = _mm_min_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <bool kGpu>
inline float round_scalar(float v) {
  return kGpu ? std::round(v) : std::rint(v);
}

template <typename T, typename S, int kBits, bool kGpu>
void quantize_rows(const T* w, int64_t w_stride, const QuantizedWeight& q, int64_t r0, int64_t r1) {
  const int gs = q.group_size;
  const int64_t groups = q.cols() / gs;
  const int64_t row_bytes = q.packed.dim(1) * 4;
  uint8_t* packed = static_cast<uint8_t*>(q.packed.raw_data());
  S* scales = q.scales.data<S>();
  S* biases = q.biases.data<S>();
  const float n_bins = float((1 << kBits) - 1);
  const float eps = 1e-7f;
  for (int64_t r = r0; r < r1; ++r) {
    const T* wr = w + r * w_stride;
    uint8_t* out = packed + r * row_bytes;
    for (int64_t g = 0; g < groups; ++g) {
      const T* wg = wr + g * gs;
      // Min and max are exact whatever the order; MLX's GPU kernels start the maximum at 0.
      __m256 vmin = _mm256_set1_ps(std::numeric_limits<float>::infinity());
      __m256 vmax = _mm256_set1_ps(kGpu ? 0.0f : -std::numeric_limits<float>::infinity());
      for (int j = 0; j < gs; j += kLanes) {
        const __m256 v = load8(wg + j);
        vmin = _mm256_min_ps(vmin, v);
        vmax = _mm256_max_ps(vmax, v);
      }
      const float w_max = hmax(vmax);
      const float w_min = hmin(vmin);
      // Scale and bias exactly as MLX: the end of larger magnitude is a whole number of steps
      // from 0, so both it and 0 are exactly representable (see docs/ops.md).
      const bool min_side = std::abs(w_min) > std::abs(w_max);
      float scale = std::max((w_max - w_min) / n_bins, eps);
      if (!min_side) scale = -scale;
      const float edge = min_side ? w_min : w_max;
      const float q0 = round_scalar<kGpu>(edge / scale);
      float bias = 0.0f;
      if (q0 != 0.0f) {
        scale = edge / q0;
        bias = edge;
      }
      const __m256 vs = _mm256_set1_ps(scale), vb = _mm256_set1_ps(bias);
      uint8_t* og = out + int64_t(g) * gs * kBits / 8;
      for (int j = 0; j < gs; j += kLanes) {
        __m256 c = _mm256_div_ps(_mm256_sub_ps(load8(wg + j), vb), vs);
        c = kGpu ? round_half_away(c)
                 : _mm256_round_ps(c, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        c = _mm256_min_ps(_mm256_max_ps(c, _mm256_setzero_ps()), _mm256_set1_ps(n_bins));
        alignas(32) int32_t codes[kLanes];
        _mm256_store_si256(reinterpret_cast<__m256i*>(codes), _mm256_cvttps_epi32(c));
        uint64_t bits = 0;
        for (int i = 0; i < kLanes; ++i) bits |= uint64_t(codes[i]) << (i * kBits);
        std::memcpy(og + j / kLanes * kBits, &bits, kBits);  // 8 codes = kBits bytes
      }
      // MLX rounds the scale and bias to their dtype after computing the codes with f32 values.
      if constexpr (std::is_same_v<S, float>) {
        scales[r * groups + g] = scale;
        biases[r * groups + g] = bias;
      } else if constexpr (std::is_same_v<S, BF16>) {
        scales[r * groups + g] = f32_to_bf16(scale);
        biases[r * groups + g] = f32_to_bf16(bias);
      } else {
        scales[r * groups + g] = f32_to_f16(scale);
        biases[r * groups + g] = f32_to_f16(bias);
      }
    }
  }
}

template <typename T>
void quantize_typed(const Tensor& w, MlxQuantizer variant, QuantizedWeight& q) {
  const T* wp = w.data<T>();
  const int64_t ws = w.stride(0);
  const bool gpu = variant == MlxQuantizer::gpu;
  dispatch_scale(q.scales.dtype(), [&]<typename S>() {
    dispatch_bits(q.bits, [&]<int kBits>() {
      parallel_for(q.rows(), row_grain(q.cols()), [&](int64_t r0, int64_t r1) {
        if (gpu)
          quantize_rows<T, S, kBits, true>(wp, ws, q, r0, r1);
        else
          quantize_rows<T, S, kBits, false>(wp, ws, q, r0, r1);
      });
    });
  });
}

// ---- dequantize ---------------------------------------------------------------------------------

// v rounded to T's precision (nearest even) and widened back.
template <typename T>
inline __m256 round_to(__m256 v) {
  if constexpr (std::is_same_v<T, float>) {
    return v;
  } else {
    alignas(16) T tmp[kLanes];
    store8(tmp, v);
    return load8(tmp);
  }
}

// Rows [r0, r1) of w, dequantized into rows of out (dtype T, row stride os). MLX computes
// multiply(codes, scales) and then add(., biases) as arrays of the output dtype: two roundings.
template <typename T, typename S, int kBits>
void dequantize_rows(const QuantView& w, T* out, int64_t os, const int32_t* ids, int64_t t0,
                     int64_t t1) {
  const S* scales = static_cast<const S*>(w.scales);
  const S* biases = static_cast<const S*>(w.biases);
  const int64_t chunks_per_group = w.group_size / kLanes;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t r = ids ? int64_t(ids[t]) : t;
    const uint8_t* row = w.row(r);
    T* o = out + t * os;
    for (int64_t g = 0; g < w.groups; ++g) {
      const __m256 s = _mm256_set1_ps(scalar_f32(scales, r * w.groups + g));
      const __m256 b = _mm256_set1_ps(scalar_f32(biases, r * w.groups + g));
      for (int64_t c = g * chunks_per_group; c < (g + 1) * chunks_per_group; ++c) {
        const __m256 product = round_to<T>(_mm256_mul_ps(unpack8_f32<kBits>(row, c), s));
        store8(o + c * kLanes, _mm256_add_ps(product, b));
      }
    }
  }
}

template <typename T>
void dequantize_typed(const QuantView& w, T* out, int64_t os, const int32_t* ids, int64_t count) {
  dispatch_scale(w.scale_dtype, [&]<typename S>() {
    dispatch_bits(w.bits, [&]<int kBits>() {
      parallel_for(count, row_grain(w.k), [&](int64_t t0, int64_t t1) {
        dequantize_rows<T, S, kBits>(w, out, os, ids, t0, t1);
      });
    });
  });
}

}  // namespace

void affine_quantize(const Tensor& w, MlxQuantizer variant, QuantizedWeight& out) {
  if (out.rows() == 0 || out.cols() == 0) return;
  switch (w.dtype()) {
    case DType::f32:
      return quantize_typed<float>(w, variant, out);
    case DType::f16:
      return quantize_typed<F16>(w, variant, out);
    case DType::bf16:
      return quantize_typed<BF16>(w, variant, out);
    default:
      HEARTH_CHECK(false, "affine_quantize w {}", w.describe());
  }
}

void affine_dequantize(const QuantizedWeight& w, Tensor& out) {
  const QuantView v(w);
  if (v.n == 0 || v.k == 0) return;
  switch (out.dtype()) {
    case DType::f32:
      return dequantize_typed(v, out.data<float>(), out.stride(0), nullptr, v.n);
    case DType::f16:
      return dequantize_typed(v, out.data<F16>(), out.stride(0), nullptr, v.n);
    case DType::bf16:
      return dequantize_typed(v, out.data<BF16>(), out.stride(0), nullptr, v.n);
    default:
      HEARTH_CHECK(false, "affine_dequantize out {}", out.describe());
  }
}

void quantized_embedding(const QuantizedWeight& table, const Tensor& ids, Tensor& out) {
  const QuantView v(table);
  const int64_t tokens = ids.dim(0);
  std::vector<int32_t> rows(static_cast<size_t>(tokens));
  const int32_t* idp = ids.data<int32_t>();
  for (int64_t t = 0; t < tokens; ++t) {
    const int32_t id = idp[t * ids.stride(0)];
    if (id < 0 || id >= v.n)
      fail(ErrorCode::invalid_argument,
           "quantized_embedding: id {} at position {} is outside [0, {})", id, t, v.n);
    rows[size_t(t)] = id;
  }
  if (tokens == 0 || v.k == 0) return;
  dequantize_typed(v, out.data<float>(), out.stride(0), rows.data(), tokens);
}

}  // namespace hearth::ops::cpu
