// Sampling and logits penalties on the host: the one definition of their semantics (mlx-lm's
// sample_utils.py). gen's samplers and processors call the row functions; the CPU backend runs
// them row by row; the CUDA kernels are tested against them.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_set>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/rows.h"

namespace hearth::ops {
namespace sampling_rows {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

}  // namespace

int32_t argmax(std::span<const float> values) {
  // First maximum, as mx.argmax / numpy / torch do. NaN never wins.
  int32_t best = 0;
  float best_value = kNegInf;
  bool found = false;
  for (size_t i = 0; i < values.size(); ++i) {
    if (!found || values[i] > best_value) {
      if (std::isnan(values[i])) continue;
      best = int32_t(i);
      best_value = values[i];
      found = true;
    }
  }
  return best;
}

void top_p(std::span<float> logprobs, float top_p) {
  // Sort ascending, keep the tokens whose ascending cumulative probability exceeds 1 - top_p
  // (HF's TopPLogitsWarper; ties keep their index order as a stable argsort does).
  std::vector<int32_t> order(logprobs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return logprobs[a] < logprobs[b]; });
  double cumulative = 0.0;
  std::vector<float> out(logprobs.begin(), logprobs.end());
  for (int32_t i : order) {
    cumulative += std::exp(double(logprobs[i]));
    if (!(cumulative > 1.0 - double(top_p))) out[i] = kNegInf;
  }
  std::copy(out.begin(), out.end(), logprobs.begin());
}

void min_p(std::span<float> logprobs, float min_p, int min_tokens_to_keep) {
  float top = kNegInf;
  for (float v : logprobs) top = std::max(top, v);
  const float threshold = top + std::log(min_p);
  std::vector<bool> keep(logprobs.size());
  for (size_t i = 0; i < logprobs.size(); ++i) keep[i] = !(logprobs[i] < threshold);
  if (min_tokens_to_keep > 1) {
    std::vector<int32_t> order(logprobs.size());
    std::iota(order.begin(), order.end(), 0);
    size_t k = std::min(order.size(), size_t(min_tokens_to_keep));
    // mlx-lm's argpartition leaves ties at the k-th value unordered; the lower index wins here so
    // that every backend keeps the same tokens.
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
      return logprobs[a] > logprobs[b] || (logprobs[a] == logprobs[b] && a < b);
    });
    for (size_t j = 0; j < k; ++j) keep[order[j]] = true;
  }
  for (size_t i = 0; i < logprobs.size(); ++i)
    if (!keep[i]) logprobs[i] = kNegInf;
}

void top_k(std::span<float> logprobs, int top_k) {
  std::vector<int32_t> order(logprobs.size());
  std::iota(order.begin(), order.end(), 0);
  // Ties at the k-th value: the lower index wins (see min_p).
  std::nth_element(order.begin(), order.begin() + top_k, order.end(), [&](int32_t a, int32_t b) {
    return logprobs[a] > logprobs[b] || (logprobs[a] == logprobs[b] && a < b);
  });
  for (size_t j = size_t(top_k); j < order.size(); ++j) logprobs[order[j]] = kNegInf;
}

int32_t categorical(std::span<const float> logprobs, float temp, double u) {
  const double inv_temp = 1.0 / double(temp);
  double max = -std::numeric_limits<double>::infinity();
  for (float v : logprobs) max = std::max(max, double(v) * inv_temp);
  if (!std::isfinite(max)) return argmax(logprobs);
  std::vector<double> weights(logprobs.size());
  double total = 0.0;
  for (size_t i = 0; i < logprobs.size(); ++i) {
    weights[i] = std::exp(double(logprobs[i]) * inv_temp - max);
    total += weights[i];
  }
  u *= total;
  int32_t last_positive = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] <= 0.0) continue;
    last_positive = int32_t(i);
    if (u < weights[i]) return int32_t(i);
    u -= weights[i];
  }
  return last_positive;  // rounding left u a hair above the total
}

int32_t sample(std::span<float> logprobs, const SamplingParams& p, double u) {
  if (p.temp == 0.0f) return argmax(logprobs);
  if (p.top_p > 0 && p.top_p < 1) top_p(logprobs, p.top_p);
  if (p.min_p != 0) min_p(logprobs, p.min_p, p.min_tokens_to_keep);
  if (p.top_k > 0) top_k(logprobs, p.top_k);
  return categorical(logprobs, p.temp, u);
}

std::span<const int32_t> last(std::span<const int32_t> history, int context) {
  size_t n = std::min(history.size(), size_t(std::max(context, 0)));
  return history.subspan(history.size() - n);
}

void repetition_penalty(std::span<const int32_t> recent, std::span<float> logits, float penalty) {
  // Each distinct recent token once: sign-aware scaling (CTRL, arXiv:1909.05858).
  std::unordered_set<int32_t> seen;
  for (int32_t t : recent) {
    if (t < 0 || size_t(t) >= logits.size() || !seen.insert(t).second) continue;
    float& l = logits[size_t(t)];
    l = l < 0 ? l * penalty : l / penalty;
  }
}

void presence_penalty(std::span<const int32_t> recent, std::span<float> logits, float penalty) {
  std::unordered_set<int32_t> seen;
  for (int32_t t : recent)
    if (t >= 0 && size_t(t) < logits.size() && seen.insert(t).second) logits[size_t(t)] -= penalty;
}

void frequency_penalty(std::span<const int32_t> recent, std::span<float> logits, float penalty) {
  for (int32_t t : recent)
    if (t >= 0 && size_t(t) < logits.size()) logits[size_t(t)] -= penalty;
}

}  // namespace sampling_rows

namespace cpu {

void sample(const Tensor& logprobs, const SamplingParams& params, std::span<const double> uniforms,
            Tensor& out) {
  Rows xr(logprobs);
  const float* xb = logprobs.data<float>();
  int32_t* ob = out.data<int32_t>();
  const int64_t n = xr.length();
  // The filters sort whole rows: one row per task.
  parallel_for(xr.count(), 1, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(n));
    for (int64_t r = begin; r < end; ++r) {
      const float* xp = xb + xr.offset(r);
      std::copy(xp, xp + n, row.begin());
      const double u = params.temp == 0.0f ? 0.0 : uniforms[size_t(r)];
      ob[r * out.stride(0)] = sampling_rows::sample(row, params, u);
    }
  });
}

void apply_logit_penalties(Tensor& logits, const Tensor& history, const Tensor& bias_ids,
                           const Tensor& bias_values, const LogitPenalties& p) {
  Rows lr(logits);
  float* lb = logits.data<float>();
  const int64_t vocab = lr.length(), width = history.dim(1);
  const int64_t n_bias = bias_ids.numel();
  const int32_t* ids = n_bias ? bias_ids.data<int32_t>() : nullptr;
  const float* values = n_bias ? bias_values.data<float>() : nullptr;
  for (int64_t b = 0; b < n_bias; ++b)
    if (ids[b] < 0 || ids[b] >= vocab)
      fail(ErrorCode::invalid_argument,
           "apply_logit_penalties: bias id {} is outside the vocabulary of {}", ids[b], vocab);
  for (int64_t r = 0; r < lr.count(); ++r) {
    std::span<float> row(lb + lr.offset(r), size_t(vocab));
    const int32_t* hp = history.data<int32_t>() + r * history.stride(0);
    // The row's ids: the right-aligned part after the padding.
    int64_t first = 0;
    while (first < width && hp[first] < 0) ++first;
    std::span<const int32_t> h(hp + first, size_t(width - first));
    for (int64_t b = 0; b < n_bias; ++b) row[size_t(ids[b])] += values[b];
    using namespace sampling_rows;
    if (p.repetition != 0) repetition_penalty(last(h, p.repetition_context), row, p.repetition);
    if (p.presence != 0) presence_penalty(last(h, p.presence_context), row, p.presence);
    if (p.frequency != 0) frequency_penalty(last(h, p.frequency_context), row, p.frequency);
  }
}

}  // namespace cpu
}  // namespace hearth::ops
