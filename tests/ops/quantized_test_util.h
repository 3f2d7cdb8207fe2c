// Test inputs for the MLX affine quantization tests: matrices whose groups are of awkward kinds
// (constant, all-negative, all-positive, zeros, huge and tiny magnitudes, exact rounding ties).
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "op_test_util.h"

namespace hearth::ops::testing {

// Kinds of groups make_group can write.
enum class GroupKind {
  uniform,     // uniform in [-1, 1]
  wide,        // uniform in [-1, 1] times 2^e, e in [-40, 40] (f16: [-12, 12])
  positive,    // all in [0.1, 2]
  negative,    // all in [-2, -0.1]
  constant,    // one value repeated
  zeros,       // all 0
  code_ties,   // min 0 and max 2^bits - 1 (scale exactly -1), the rest on j + 0.5: codes tie
  scale_ties,  // range 2^bits - 1 with the larger end at -(h + 0.5): edge / scale ties
  one_tiny,    // zeros and one tiny value (the q0 == 0 case: bias 0, scale +-1e-7)
  subnormal,   // f32 subnormals (f16: its subnormal range)
  narrow,      // c + noise far below c: range under eps * n_bins
  count
};

// Fills g[0, gs) with one group of `kind` for `bits`-bit quantization; values are representable
// in `dtype` only approximately (the caller rounds).
inline void make_group(float* g, int gs, GroupKind kind, int bits, DType dtype, Rng& rng) {
  const float n_bins = float((1 << bits) - 1);
  const bool f16 = dtype == DType::f16;
  auto sign = [&] { return rng.uniform(0.0f, 1.0f) < 0.5f ? -1.0f : 1.0f; };
  auto pow2 = [&](int lo, int hi) { return std::ldexp(1.0f, int(rng.integer(lo, hi))); };
  switch (kind) {
    case GroupKind::uniform:
      for (int j = 0; j < gs; ++j) g[j] = rng.uniform(-1.0f, 1.0f);
      break;
    case GroupKind::wide: {
      const float m = f16 ? pow2(-12, 12) : pow2(-40, 40);
      for (int j = 0; j < gs; ++j) g[j] = rng.uniform(-1.0f, 1.0f) * m;
      break;
    }
    case GroupKind::positive:
      for (int j = 0; j < gs; ++j) g[j] = rng.uniform(0.1f, 2.0f);
      break;
    case GroupKind::negative:
      for (int j = 0; j < gs; ++j) g[j] = rng.uniform(-2.0f, -0.1f);
      break;
    case GroupKind::constant: {
      const float c = rng.uniform(-3.0f, 3.0f);
      std::fill(g, g + gs, c);
      break;
    }
    case GroupKind::zeros:
      std::fill(g, g + gs, 0.0f);
      break;
    case GroupKind::code_ties: {
      const float m = pow2(-4, 4) * sign();
      for (int j = 0; j < gs; ++j) g[j] = (float(rng.integer(0, int64_t(n_bins) - 1)) + 0.5f) * m;
      g[rng.integer(0, gs - 1)] = 0.0f;
      g[rng.integer(0, gs - 1)] = n_bins * m;
      break;
    }
    case GroupKind::scale_ties: {
      const float m = pow2(-4, 4) * sign();
      const float h = float(rng.integer(0, int64_t(n_bins)));
      const float lo = -(h + 0.5f), hi = n_bins - h - 0.5f;
      for (int j = 0; j < gs; ++j)
        g[j] = (lo + float(rng.integer(0, int64_t(n_bins)))) * m;  // half-integers in range
      g[rng.integer(0, gs - 1)] = lo * m;
      g[rng.integer(0, gs - 1)] = hi * m;
      break;
    }
    case GroupKind::one_tiny:
      std::fill(g, g + gs, 0.0f);
      g[rng.integer(0, gs - 1)] = sign() * (f16 ? 6e-8f : 1e-9f) * float(rng.integer(1, 4));
      break;
    case GroupKind::subnormal: {
      const float m = f16 ? 3e-5f : 1e-39f;
      for (int j = 0; j < gs; ++j) g[j] = rng.uniform(-1.0f, 1.0f) * m;
      break;
    }
    case GroupKind::narrow: {
      const float c = rng.uniform(100.0f, 1000.0f) * sign();
      for (int j = 0; j < gs; ++j) g[j] = c + rng.uniform(-1.0f, 1.0f) * c * 1e-3f;
      break;
    }
    case GroupKind::count:
      break;
  }
}

// A host [rows, cols] matrix of `dtype` whose groups cycle through every GroupKind (group i of
// row r gets kind (r * groups + i + offset) % count), values rounded to dtype.
inline Tensor awkward_matrix(int64_t rows, int64_t cols, int gs, int bits, DType dtype, Rng& rng,
                             int offset = 0) {
  std::vector<float> v(size_t(rows * cols));
  const int64_t groups = cols / gs;
  const int kinds = int(GroupKind::count);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups; ++g)
      make_group(v.data() + r * cols + g * gs, gs,
                 GroupKind(int((r * groups + g + offset) % kinds)), bits, dtype, rng);
  Tensor f = Tensor::from_vector(v, {rows, cols});
  if (dtype == DType::f32) return f;
  Tensor t = Tensor::empty({rows, cols}, dtype);
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (dtype == DType::bf16)
      t.data<BF16>()[i] = f32_to_bf16(v[size_t(i)]);
    else
      t.data<F16>()[i] = f32_to_f16(v[size_t(i)]);
  }
  return t;
}

}  // namespace hearth::ops::testing
