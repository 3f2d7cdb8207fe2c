// CPU rope (HF rotate_half layout). Per token, the angles are rounded exactly as HF rounds them
// (float32 position * float32 inv_freq); cos/sin of that float are computed in double and
// rounded, then scaled by attention_scaling in float32, and shared by all heads of the token.
#include <cmath>
#include <vector>

#include "core/thread_pool.h"
#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/simd.h"

namespace hearth::ops::cpu {

void rope(const Tensor& x, const Tensor& positions, const Tensor& inv_freq, float attention_scaling,
          Tensor& out) {
  const int64_t tokens = x.dim(0), heads = x.dim(1), head_dim = x.dim(2);
  const int64_t half = inv_freq.dim(0);
  const int64_t xs0 = x.stride(0), xs1 = x.stride(1), os0 = out.stride(0), os1 = out.stride(1);
  const float* xb = x.data<float>();
  float* ob = out.data<float>();
  const float* freq = inv_freq.data<float>();
  const int32_t* pos = positions.data<int32_t>();
  const int64_t ps = positions.stride(0);
  // Tokens per task: cos/sin cost ~half * 40 ns per token, the rotation heads * head_dim FMAs.
  int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(heads * head_dim + 8 * half, 1));
  parallel_for(tokens, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> cos_sin(static_cast<size_t>(2 * half));
    float* c = cos_sin.data();
    float* s = c + half;
    for (int64_t t = begin; t < end; ++t) {
      float p = float(pos[t * ps]);
      for (int64_t i = 0; i < half; ++i) {
        float angle = p * freq[i];
        c[i] = float(std::cos(double(angle))) * attention_scaling;
        s[i] = float(std::sin(double(angle))) * attention_scaling;
      }
      for (int64_t h = 0; h < heads; ++h) {
        const float* xp = xb + t * xs0 + h * xs1;
        float* op = ob + t * os0 + h * os1;
        int64_t i = 0;
        for (; i + kLanes <= half; i += kLanes) {
          __m256 x1 = _mm256_loadu_ps(xp + i), x2 = _mm256_loadu_ps(xp + half + i);
          __m256 vc = _mm256_loadu_ps(c + i), vs = _mm256_loadu_ps(s + i);
          _mm256_storeu_ps(op + i, _mm256_fmsub_ps(x1, vc, _mm256_mul_ps(x2, vs)));
          _mm256_storeu_ps(op + half + i, _mm256_fmadd_ps(x2, vc, _mm256_mul_ps(x1, vs)));
        }
        for (; i < half; ++i) {
          float x1 = xp[i], x2 = xp[half + i];
          op[i] = x1 * c[i] - x2 * s[i];
          op[half + i] = x2 * c[i] + x1 * s[i];
        }
        if (xp != op)
          for (int64_t d = 2 * half; d < head_dim; ++d) op[d] = xp[d];
      }
    }
  });
}

}  // namespace hearth::ops::cpu
