#include "gen/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/tensor.h"
#include "ops/copy.h"
#include "ops/sampling.h"
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
  return ops::sampling_rows::argmax(values);
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
  ops::sampling_rows::top_p(logprobs, top_p);
}

void apply_min_p(std::span<float> logprobs, float min_p, int min_tokens_to_keep) {
  ops::sampling_rows::min_p(logprobs, min_p, min_tokens_to_keep);
}

void apply_top_k(std::span<float> logprobs, int top_k) {
  ops::sampling_rows::top_k(logprobs, top_k);
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
  // One draw per call, also for a row without a finite weight (as mx.random.categorical consumes
  // a key): the device sampler takes one uniform per row, so both use the generator alike.
  return ops::sampling_rows::categorical(logprobs, temp, rng.uniform());
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
  using ops::sampling_rows::last;
  if (p.repetition_penalty && *p.repetition_penalty != 0) {
    float penalty = *p.repetition_penalty;
    if (penalty < 0)
      fail(ErrorCode::invalid_argument, "repetition_penalty must be non-negative, got {}", penalty);
    int context = p.repetition_context_size;
    out.push_back([=](std::span<const int32_t> history, std::span<float> logits) {
      ops::sampling_rows::repetition_penalty(last(history, context), logits, penalty);
    });
  }
  if (p.presence_penalty && *p.presence_penalty != 0) {
    float penalty = *p.presence_penalty;
    int context = p.presence_context_size;
    out.push_back([=](std::span<const int32_t> history, std::span<float> logits) {
      ops::sampling_rows::presence_penalty(last(history, context), logits, penalty);
    });
  }
  if (p.frequency_penalty && *p.frequency_penalty != 0) {
    float penalty = *p.frequency_penalty;
    int context = p.frequency_context_size;
    out.push_back([=](std::span<const int32_t> history, std::span<float> logits) {
      ops::sampling_rows::frequency_penalty(last(history, context), logits, penalty);
    });
  }
  return out;
}

DeviceSampler::DeviceSampler(const SamplerParams& sampling, const LogitsProcessorParams& processors,
                             Device device) {
  params_ = {sampling.temp, sampling.top_p, sampling.min_p, sampling.min_tokens_to_keep,
             sampling.top_k};
  // make_logits_processors' rules: an unset or zero penalty is off.
  penalties_.repetition = processors.repetition_penalty.value_or(0.0f);
  penalties_.repetition_context = std::max(processors.repetition_context_size, 0);
  penalties_.presence = processors.presence_penalty.value_or(0.0f);
  penalties_.presence_context = std::max(processors.presence_context_size, 0);
  penalties_.frequency = processors.frequency_penalty.value_or(0.0f);
  penalties_.frequency_context = std::max(processors.frequency_context_size, 0);
  const struct {
    float penalty;
    int context;
  } terms[] = {{penalties_.repetition, penalties_.repetition_context},
               {penalties_.presence, penalties_.presence_context},
               {penalties_.frequency, penalties_.frequency_context}};
  for (const auto& t : terms) {
    if (t.penalty == 0) continue;
    process_ = true;
    width_ = std::max<int64_t>(width_, t.context);
  }
  process_ |= !processors.logit_bias.empty();
  std::vector<int32_t> ids;
  std::vector<float> values;
  for (const auto& [id, value] : processors.logit_bias) {
    ids.push_back(id);
    values.push_back(value);
  }
  const int64_t n = int64_t(ids.size());
  bias_ids_ = ops::to_device(Tensor::from_vector(ids, {n}), device);
  bias_values_ = ops::to_device(Tensor::from_vector(values, {n}), device);
}

std::vector<int32_t> DeviceSampler::sample(Tensor& logits,
                                           std::span<const std::span<const int32_t>> histories,
                                           Rng& rng, Tensor* logprobs) {
  Tensor ids = sample_ids(logits, histories, rng, logprobs);
  return ops::to_device(ids, Device::cpu()).to_vector<int32_t>();
}

Tensor DeviceSampler::sample_ids(Tensor& logits,
                                 std::span<const std::span<const int32_t>> histories, Rng& rng,
                                 Tensor* logprobs, const Tensor* newest) {
  const int64_t rows = logits.dim(0);
  HEARTH_CHECK(int64_t(histories.size()) == rows, "{} histories for {} rows of logits",
               histories.size(), rows);
  if (process_) {
    // Each row's last width_ ids, right-aligned after -1 padding: a few hundred bytes a step.
    // With `newest`, the last column is its ids' (copied on the device) and the host's ids end
    // one column earlier.
    const int64_t held = newest ? width_ - 1 : width_;
    std::vector<int32_t> recent(size_t(rows * width_), -1);
    for (int64_t r = 0; r < rows; ++r) {
      std::span<const int32_t> h = ops::sampling_rows::last(histories[size_t(r)], int(held));
      std::copy(h.begin(), h.end(), recent.begin() + r * width_ + held - int64_t(h.size()));
    }
    Tensor history = ops::to_device(Tensor::from_vector(recent, {rows, width_}), logits.device());
    if (newest) {
      Tensor last_column = history.select(1, width_ - 1);
      ops::copy(*newest, last_column);
    }
    ops::apply_logit_penalties(logits, history, bias_ids_, bias_values_, penalties_);
  }
  Tensor normalized = Tensor::empty(logits.shape(), DType::f32, logits.device());
  ops::log_softmax(logits, normalized);
  std::vector<double> uniforms;
  if (params_.temp > 0)
    for (int64_t r = 0; r < rows; ++r) uniforms.push_back(rng.uniform());
  Tensor ids = Tensor::empty({rows}, DType::i32, logits.device());
  ops::sample(normalized, params_, uniforms, ids);
  if (logprobs) *logprobs = normalized;
  return ids;
}

}  // namespace hearth::gen
