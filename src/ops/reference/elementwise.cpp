// Reference rms_norm, rope, silu_mul, add, softmax, log_softmax: the formulas of HF's
// LlamaRMSNorm, apply_rotary_pos_emb (rotate_half layout) and SiLU, in double.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/reference/reference.h"

namespace hearth::ops::reference {
namespace {

// Calls fn(row r as a 1-D view, r) for each row (last dimension) of a tensor of any rank.
template <typename Fn>
void for_each_row(const Tensor& t, Fn&& fn) {
  int64_t rows = 1;
  for (int d = 0; d + 1 < t.ndim(); ++d) rows *= t.dim(d);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<int64_t> index(size_t(t.ndim() - 1));
    int64_t rest = r;
    for (int d = t.ndim() - 2; d >= 0; --d) {
      index[size_t(d)] = rest % t.dim(d);
      rest /= t.dim(d);
    }
    Tensor row = t;
    for (int64_t i : index) row = row.select(0, i);
    fn(row, r);
  }
}

}  // namespace

void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  // HF LlamaRMSNorm: x * rsqrt(mean(x^2) + eps), then weight * (that).
  std::vector<std::vector<double>> results;
  for_each_row(x, [&](const Tensor& row, int64_t) {
    int64_t h = row.dim(0);
    double sum_sq = 0.0;
    for (int64_t i = 0; i < h; ++i) sum_sq += get(row, {i}) * get(row, {i});
    double inv_rms = 1.0 / std::sqrt(sum_sq / double(h) + double(eps));
    std::vector<double> r(static_cast<size_t>(h));
    for (int64_t i = 0; i < h; ++i) r[size_t(i)] = get(weight, {i}) * (get(row, {i}) * inv_rms);
    results.push_back(std::move(r));
  });
  // Written after all rows are read so that out may alias x.
  for_each_row(out, [&](const Tensor& row, int64_t r) {
    for (int64_t i = 0; i < row.dim(0); ++i) set(row, {i}, results[size_t(r)][size_t(i)]);
  });
}

void rope(const Tensor& x, const Tensor& positions, const Tensor& inv_freq, float attention_scaling,
          Tensor& out) {
  // HF: freqs = position * inv_freq; emb = cat(freqs, freqs); cos/sin scaled by
  // attention_scaling; out = x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x2, x1).
  int64_t tokens = x.dim(0), heads = x.dim(1), head_dim = x.dim(2);
  int64_t half = inv_freq.dim(0);
  Tensor result = Tensor::empty(x.shape(), DType::f32);
  for (int64_t t = 0; t < tokens; ++t) {
    float pos = float(get_int(positions, {t}));
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < half; ++i) {
        // HF forms the angle as a float32 product (inv_freq @ position_ids in float32); at large
        // positions that rounding is part of the result, so the reference keeps it.
        double angle = double(pos * float(get(inv_freq, {i})));
        double c = std::cos(angle) * attention_scaling, s = std::sin(angle) * attention_scaling;
        double x1 = get(x, {t, h, i}), x2 = get(x, {t, h, i + half});
        set(result, {t, h, i}, x1 * c - x2 * s);
        set(result, {t, h, i + half}, x2 * c + x1 * s);
      }
      for (int64_t i = 2 * half; i < head_dim; ++i) set(result, {t, h, i}, get(x, {t, h, i}));
    }
  }
  copy(result, out);
}

void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) {
  for (int64_t t = 0; t < gate.dim(0); ++t) {
    for (int64_t i = 0; i < gate.dim(1); ++i) {
      double g = get(gate, {t, i});
      double silu = g / (1.0 + std::exp(-g));
      set(out, {t, i}, silu * get(up, {t, i}));
    }
  }
}

void add(const Tensor& a, const Tensor& b, Tensor& out) {
  Tensor fa = a.reshape({-1}), fb = b.reshape({-1}), fo = out.reshape({-1});
  for (int64_t i = 0; i < fa.dim(0); ++i) set(fo, {i}, get(fa, {i}) + get(fb, {i}));
}

void softmax(const Tensor& x, Tensor& out) {
  std::vector<std::vector<double>> results;
  for_each_row(x, [&](const Tensor& row, int64_t) {
    int64_t n = row.dim(0);
    double mx = -INFINITY;
    for (int64_t i = 0; i < n; ++i) mx = std::max(mx, get(row, {i}));
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += std::exp(get(row, {i}) - mx);
    std::vector<double> r(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) r[size_t(i)] = std::exp(get(row, {i}) - mx) / sum;
    results.push_back(std::move(r));
  });
  for_each_row(out, [&](const Tensor& row, int64_t r) {
    for (int64_t i = 0; i < row.dim(0); ++i) set(row, {i}, results[size_t(r)][size_t(i)]);
  });
}

void log_softmax(const Tensor& x, Tensor& out) {
  std::vector<std::vector<double>> results;
  for_each_row(x, [&](const Tensor& row, int64_t) {
    int64_t n = row.dim(0);
    double mx = -INFINITY;
    for (int64_t i = 0; i < n; ++i) mx = std::max(mx, get(row, {i}));
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += std::exp(get(row, {i}) - mx);
    double log_sum = std::log(sum);
    std::vector<double> r(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) r[size_t(i)] = get(row, {i}) - mx - log_sum;
    results.push_back(std::move(r));
  });
  for_each_row(out, [&](const Tensor& row, int64_t r) {
    for (int64_t i = 0; i < row.dim(0); ++i) set(row, {i}, results[size_t(r)][size_t(i)]);
  });
}

}  // namespace hearth::ops::reference
