// CPU quantized_matmul entry (GEMV for few rows of x, GEMM otherwise) and the GEMM path: the
// packed GEMM of gemm.cpp with panels dequantized from the codes instead of widened from bf16.
// Dequantizing costs about as much as widening (unpack, convert, one FMA per 8 weights) and is
// done once per 16-row x 256-column panel, then reused by every row of x.
#include <algorithm>
#include <vector>

#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/quantized_internal.h"
#include "ops/precision.h"

namespace hearth::ops::cpu {
namespace {

// Rows [n0, n0 + rows) of w (rows <= 16; missing rows are zeros) over k in [k0, k0 + kc) into
// panel[kk * 16 + j], as f32 weights s * q + b. kc is a multiple of the group size (K chunks are
// 256 wide and groups 32..128), so each run of 8 codes lies in one group.
template <typename S, int kBits>
void pack_quantized(const void* ctx, int64_t n0, int64_t rows, int64_t k0, int64_t kc,
                    float* panel) {
  const QuantView& w = *static_cast<const QuantView*>(ctx);
  const S* scales = static_cast<const S*>(w.scales);
  const S* biases = static_cast<const S*>(w.biases);
  constexpr int kNr = 16;
  for (int half = 0; half < 2; ++half) {
    const int64_t valid = std::clamp<int64_t>(rows - half * 8, 0, 8);
    if (valid == 0) {
      for (int64_t kk = 0; kk < kc; ++kk)
        _mm256_storeu_ps(panel + kk * kNr + half * 8, _mm256_setzero_ps());
      continue;
    }
    int64_t r[8];
    for (int j = 0; j < 8; ++j) r[j] = n0 + half * 8 + std::min<int64_t>(j, valid - 1);
    for (int64_t kk = 0; kk < kc; kk += kLanes) {
      const int64_t col = k0 + kk, chunk = col / kLanes, g = col / w.group_size;
      __m256 v[8];
      for (int j = 0; j < 8; ++j) {
        const __m256 s = _mm256_set1_ps(scalar_f32(scales, r[j] * w.groups + g));
        const __m256 b = _mm256_set1_ps(scalar_f32(biases, r[j] * w.groups + g));
        v[j] = _mm256_fmadd_ps(unpack8_f32<kBits>(w.row(r[j]), chunk), s, b);
      }
      transpose8(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
      float* dst = panel + kk * kNr + half * 8;
      for (int j = 0; j < 8; ++j) _mm256_storeu_ps(dst + j * kNr, v[j]);
    }
    if (valid < 8)  // rows past N were unpacked as copies of the last row: zero them
      for (int64_t kk = 0; kk < kc; ++kk)
        for (int64_t j = valid; j < 8; ++j) panel[kk * kNr + half * 8 + j] = 0.0f;
  }
}

}  // namespace

void quantized_gemm(const MatmulArgs& a, const QuantView& w) {
  PackPanelFn pack = nullptr;
  dispatch_scale(w.scale_dtype, [&]<typename S>() {
    dispatch_bits(w.bits, [&]<int kBits>() { pack = pack_quantized<S, kBits>; });
  });
  gemm_packed(a, pack, &w);
}

void quantized_matmul(const Tensor& x, const QuantizedWeight& w, const Tensor* bias, Tensor& out) {
  const QuantView v(w);
  MatmulArgs a;
  a.m = x.dim(0);
  a.k = x.dim(1);
  a.n = v.n;
  if (a.m == 0 || a.n == 0) return;
  a.x = x.data<float>();
  a.x_stride = x.stride(0);
  a.out = out.data<float>();
  a.out_stride = out.stride(0);
  std::vector<float> bias_f32;
  if (bias) {
    bias_f32.resize(size_t(a.n));
    for (int64_t j = 0; j < a.n; ++j)
      bias_f32[size_t(j)] = load_as_f32(static_cast<const char*>(bias->raw_data()) +
                                            j * bias->stride(0) * int64_t(bias->element_size()),
                                        bias->dtype());
    a.bias = bias_f32.data();
  }
  if (a.k == 0) {  // no codes: out = bias
    for (int64_t i = 0; i < a.m; ++i)
      for (int64_t j = 0; j < a.n; ++j) a.out[i * a.out_stride + j] = a.bias ? a.bias[j] : 0.0f;
    return;
  }
  if (a.m <= gemv_max_rows())
    quantized_gemv(a, v);
  else if (matmul_precision() != MatmulPrecision::bf16 || !quantized_gemm_int16(a, v))
    quantized_gemm(a, v);
}

}  // namespace hearth::ops::cpu
