#include "gen/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/tensor.h"
#include "ops/softmax.h"

namespace hearth::gen {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

}  // namespace

Rng Rng::from_entropy() {
  std::random_device rd;
  return Rng((uint64_t(rd()) << 32) ^ rd());
}

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

void log_softmax_inplace(std::span<float> logits) {
  // The CPU op (vectorized exp, f64 partial sums): one implementation, so the generator's logprobs
  // on the CPU are the same bits whether or not logits processors ran first.
  const int64_t n = int64_t(logits.size());
  if (n == 0) return;
  Tensor x = Tensor::empty({1, n}, DType::f32);
  std::copy(logits.begin(), logits.end(), x.data<float>());
  Tensor out = Tensor::empty({1, n}, DType::f32);
  ops::log_softmax(x, out);
  std::copy(out.data<float>(), out.data<float>() + n, logits.begin());
}

void apply_top_p(std::span<float> logprobs, float top_p) {
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

void apply_min_p(std::span<float> logprobs, float min_p, int min_tokens_to_keep) {
  float top = kNegInf;
  for (float v : logprobs) top = std::max(top, v);
  const float threshold = top + std::log(min_p);
  std::vector<bool> keep(logprobs.size());
  for (size_t i = 0; i < logprobs.size(); ++i) keep[i] = !(logprobs[i] < threshold);
  if (min_tokens_to_keep > 1) {
    std::vector<int32_t> order(logprobs.size());
    std::iota(order.begin(), order.end(), 0);
    size_t k = std::min(order.size(), size_t(min_tokens_to_keep));
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int32_t a, int32_t b) { return logprobs[a] > logprobs[b]; });
    for (size_t j = 0; j < k; ++j) keep[order[j]] = true;
  }
  for (size_t i = 0; i < logprobs.size(); ++i)
    if (!keep[i]) logprobs[i] = kNegInf;
}

void apply_top_k(std::span<float> logprobs, int top_k) {
  std::vector<int32_t> order(logprobs.size());
  std::iota(order.begin(), order.end(), 0);
  std::nth_element(order.begin(), order.begin() + top_k, order.end(),
                   [&](int32_t a, int32_t b) { return logprobs[a] > logprobs[b]; });
  for (size_t j = size_t(top_k); j < order.size(); ++j) logprobs[order[j]] = kNegInf;
}

void apply_xtc(std::span<float> logprobs, float probability, float threshold,
               std::span<const int32_t> special_tokens, Rng& rng) {
  // mlx-lm draws the coin on every call and applies XTC when uniform <= probability.
  if (rng.uniform() > double(probability)) return;
  float max = kNegInf;
  for (float v : logprobs) max = std::max(max, v);
  double sum = 0.0;
  for (float v : logprobs) sum += std::exp(double(v) - double(max));
  std::vector<double> probs(logprobs.size());
  double smallest_above = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < logprobs.size(); ++i) {
    probs[i] = std::exp(double(logprobs[i]) - double(max)) / sum;
    if (probs[i] > double(threshold)) smallest_above = std::min(smallest_above, probs[i]);
  }
  // Remove every token above the threshold except the least likely of them.
  std::unordered_set<int32_t> special(special_tokens.begin(), special_tokens.end());
  for (size_t i = 0; i < logprobs.size(); ++i)
    if (probs[i] > smallest_above && !special.count(int32_t(i))) logprobs[i] = kNegInf;
}

int32_t categorical_sample(std::span<const float> logprobs, float temp, Rng& rng) {
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
  double u = rng.uniform() * total;
  int32_t last_positive = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] <= 0.0) continue;
    last_positive = int32_t(i);
    if (u < weights[i]) return int32_t(i);
    u -= weights[i];
  }
  return last_positive;  // rounding left u a hair above the total
}

Sampler make_sampler(const SamplerParams& p, int64_t vocab_size) {
  if (p.temp < 0) fail(ErrorCode::invalid_argument, "--temp must be >= 0, got {}", p.temp);
  if (p.temp == 0.0f) {
    return [](std::span<float> logprobs, Rng&) { return argmax(logprobs); };
  }
  if (p.min_p < 0 || p.min_p > 1)
    fail(ErrorCode::invalid_argument, "--min-p has to be in [0, 1], got {}", p.min_p);
  if (p.min_tokens_to_keep < 1)
    fail(ErrorCode::invalid_argument, "--min-tokens-to-keep has to be a positive integer, got {}",
         p.min_tokens_to_keep);
  if (p.top_k < 0 || (p.top_k > 0 && p.top_k >= vocab_size))
    fail(ErrorCode::invalid_argument, "--top-k has to be in (0, {}) (or 0 to disable), got {}",
         vocab_size, p.top_k);
  if (p.xtc_probability < 0 || p.xtc_probability > 1)
    fail(ErrorCode::invalid_argument, "--xtc-probability has to be in [0, 1], got {}",
         p.xtc_probability);
  if (p.xtc_probability > 0 && (p.xtc_threshold < 0 || p.xtc_threshold > 0.5f))
    fail(ErrorCode::invalid_argument, "--xtc-threshold has to be in [0, 0.5], got {}",
         p.xtc_threshold);
  if (p.top_p < 0 || p.top_p > 1)
    fail(ErrorCode::invalid_argument, "--top-p has to be in [0, 1], got {}", p.top_p);
  return [p](std::span<float> logprobs, Rng& rng) {
    if (p.top_p > 0 && p.top_p < 1) apply_top_p(logprobs, p.top_p);
    if (p.min_p != 0) apply_min_p(logprobs, p.min_p, p.min_tokens_to_keep);
    if (p.xtc_probability > 0)
      apply_xtc(logprobs, p.xtc_probability, p.xtc_threshold, p.xtc_special_tokens, rng);
    if (p.top_k > 0) apply_top_k(logprobs, p.top_k);
    return categorical_sample(logprobs, p.temp, rng);
  };
}

std::vector<LogitsProcessor> make_logits_processors(const LogitsProcessorParams& p,
                                                    int64_t vocab_size) {
  std::vector<LogitsProcessor> out;
  if (!p.logit_bias.empty()) {
    for (const auto& [id, _] : p.logit_bias)
      if (id < 0 || id >= vocab_size)
        fail(ErrorCode::invalid_argument, "logit_bias token id {} is outside the vocabulary", id);
    auto bias = p.logit_bias;
    out.push_back([bias](std::span<const int32_t>, std::span<float> logits) {
      for (const auto& [id, value] : bias) logits[size_t(id)] += value;
    });
  }
  auto last = [](std::span<const int32_t> history, int context) {
    size_t n = std::min(history.size(), size_t(std::max(context, 0)));
    return history.subspan(history.size() - n);
  };
  if (p.repetition_penalty && *p.repetition_penalty != 0) {
    float penalty = *p.repetition_penalty;
    if (penalty < 0)
      fail(ErrorCode::invalid_argument, "repetition_penalty must be non-negative, got {}", penalty);
    int context = p.repetition_context_size;
    out.push_back([=](std::span<const int32_t> history, std::span<float> logits) {
      // Each distinct recent token once: sign-aware scaling (CTRL, arXiv:1909.05858).
      std::unordered_set<int32_t> seen;
      for (int32_t t : last(history, context)) {
        if (!seen.insert(t).second) continue;
        float& l = logits[size_t(t)];
        l = l < 0 ? l * penalty : l / penalty;
      }
    });
  }
  if (p.presence_penalty && *p.presence_penalty != 0) {
    float penalty = *p.presence_penalty;
    int context = p.presence_context_size;
    out.push_back([=](std::span<const int32_t> history, std::span<float> logits) {
      std::unordered_set<int32_t> seen;
      for (int32_t t : last(history, context))
        if (seen.insert(t).second) logits[size_t(t)] -= penalty;
    });
  }
  if (p.frequency_penalty && *p.frequency_penalty != 0) {
    float penalty = *p.frequency_penalty;
    int context = p.frequency_context_size;
    out.push_back([=](std::span<const int32_t> history, std::span<float> logits) {
      for (int32_t t : last(history, context)) logits[size_t(t)] -= penalty;
    });
  }
  return out;
}

}  // namespace hearth::gen
