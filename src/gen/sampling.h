// Samplers and logits processors with mlx-lm's semantics (sample_utils.py): the sampler turns
// log-probabilities into a token, processors adjust logits given the token history.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <vector>

#include "core/tensor.h"
#include "ops/sampling.h"

namespace hearth::gen {

class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  static Rng from_entropy();
  double uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(engine_); }

 private:
  std::mt19937_64 engine_;
};

struct SamplerParams {
  float temp = 0.0f;   // 0: greedy (argmax)
  float top_p = 0.0f;  // used when 0 < top_p < 1
  float min_p = 0.0f;
  int min_tokens_to_keep = 1;
  int top_k = 0;
  float xtc_probability = 0.0f;
  float xtc_threshold = 0.1f;
  std::vector<int32_t> xtc_special_tokens;  // never removed by XTC
};

// Picks a token from log-probabilities [V]; may overwrite them (masking).
using Sampler = std::function<int32_t(std::span<float> logprobs, Rng& rng)>;

// Validates the parameters as mlx-lm does (invalid_argument errors naming the flag) and builds
// the chain top_p -> min_p -> XTC -> top_k -> categorical(logprobs / temp).
Sampler make_sampler(const SamplerParams& params, int64_t vocab_size);

// Adjusts logits [V] in place; history holds the prompt and the tokens generated so far.
using LogitsProcessor =
    std::function<void(std::span<const int32_t> history, std::span<float> logits)>;

struct LogitsProcessorParams {
  std::map<int32_t, float> logit_bias;
  std::optional<float> repetition_penalty;
  int repetition_context_size = 20;
  std::optional<float> presence_penalty;
  int presence_context_size = 20;
  std::optional<float> frequency_penalty;
  int frequency_context_size = 20;
};

std::vector<LogitsProcessor> make_logits_processors(const LogitsProcessorParams& params,
                                                    int64_t vocab_size);

// Sampling where the logits are (ops::sample, ops::apply_logit_penalties): a GPU step sends back
// token ids only. It covers the parameter-described sampler without XTC and the processors of
// LogitsProcessorParams, with the host's results for the same Rng draws (one uniform per row when
// temp > 0, as categorical_sample draws).
class DeviceSampler {
 public:
  // `sampling` and `processors` were validated by make_sampler / make_logits_processors.
  DeviceSampler(const SamplerParams& sampling, const LogitsProcessorParams& processors,
                Device device);
  // logits: f32 [R, V] on the device, processed in place; histories[r]: row r's prompt and
  // generated ids. Returns the ids; `logprobs`, when given, receives the processed and
  // normalized rows [R, V] (on the device).
  std::vector<int32_t> sample(Tensor& logits, std::span<const std::span<const int32_t>> histories,
                              Rng& rng, Tensor* logprobs = nullptr);
  // sample() without the wait: the ids, i32 [R], stay on the device. `newest` (i32 [R] on the
  // device), when given, holds each row's latest id, which the host does not have yet (pipelined
  // decode) and histories[r] does not include.
  Tensor sample_ids(Tensor& logits, std::span<const std::span<const int32_t>> histories, Rng& rng,
                    Tensor* logprobs = nullptr, const Tensor* newest = nullptr);

 private:
  ops::SamplingParams params_;
  ops::LogitPenalties penalties_;
  bool process_ = false;
  int64_t width_ = 1;  // history ids uploaded per row: the widest active context
  Tensor bias_ids_, bias_values_;
};

// The pieces, exposed for tests. Each masks removed entries with -inf.
void apply_top_p(std::span<float> logprobs, float top_p);
void apply_min_p(std::span<float> logprobs, float min_p, int min_tokens_to_keep);
void apply_top_k(std::span<float> logprobs, int top_k);
void apply_xtc(std::span<float> logprobs, float probability, float threshold,
               std::span<const int32_t> special_tokens, Rng& rng);
int32_t categorical_sample(std::span<const float> logprobs, float temp, Rng& rng);
int32_t argmax(std::span<const float> values);
// logits - logsumexp(logits), in place.
void log_softmax_inplace(std::span<float> logits);

}  // namespace hearth::gen
