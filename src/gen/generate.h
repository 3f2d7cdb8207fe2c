// Text generation with mlx-lm's API: generate_step (tokens), stream_generate (text pieces with
// stats) and generate (the whole text). A single request runs as a batch of one through the
// model's forward pass, so every front end shares this one path.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gen/sampling.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "ops/graph.h"
#include "text/tokenizer.h"

namespace hearth::gen {

struct GenerationOptions {
  int max_tokens = 256;  // -1: no limit
  SamplerParams sampling;
  std::optional<uint64_t> seed;  // unset: seeded from the OS
  Sampler sampler;               // overrides `sampling` when set
  LogitsProcessorParams processors;
  std::vector<LogitsProcessor> extra_processors;  // run after the ones built from `processors`
  int prefill_step_size = 2048;
  int kv_block_size = 32;
  // mlx-lm's --max-kv-size: 0 keeps every token (standard caches); otherwise layers without a
  // sliding window get a rotating cache of this many slots with 4 sink tokens.
  int64_t max_kv_size = 0;
  // Layers with a sliding window get a rotating cache of max_size = window, keep 0 (mlx-lm's
  // make_cache for llama/mistral/qwen2); false: a standard cache masked by the window (HF).
  bool rotating_window_layers = true;
  // mlx-lm's --kv-bits / --kv-group-size / --quantized-kv-start: kv_bits 0 keeps the cache dense;
  // otherwise the cache is converted to kv_bits-bit MLX affine codes (groups of kv_group_size)
  // after the first forward pass (prefill chunk or step) that leaves it holding at least
  // quantized_kv_start tokens.
  int kv_bits = 0;
  int kv_group_size = 64;
  int64_t quantized_kv_start = 5000;
  std::vector<int32_t> extra_eos_token_ids;
  // Pipelined decode (TokenGenerator, batch_generate's greedy steps): step n + 1 is queued
  // before the host reads token n.
  // Unset: on for GPUs (HEARTH_PIPELINED_DECODE=0 turns it off), off on the CPU, where a step
  // runs as it is queued and pipelining gains nothing.
  std::optional<bool> pipelined_decode;
  // Called after each prefill chunk with (tokens processed, prompt tokens).
  std::function<void(int64_t, int64_t)> prompt_progress;
};

// mlx-lm's make_prompt_cache: one policy per layer from the model's sliding windows and
// options.max_kv_size / rotating_window_layers.
std::vector<kv::CachePolicy> cache_policies(const model::Model& model,
                                            const GenerationOptions& options);
// Pool blocks one sequence with these policies can need for `horizon` tokens.
int64_t cache_blocks_needed(const std::vector<kv::CachePolicy>& policies,
                            const GenerationOptions& options, int64_t horizon);
// A fresh cache for generating up to `horizon` tokens (prompt included) with those policies.
std::shared_ptr<kv::KvCache> make_prompt_cache(const model::Model& model,
                                               const GenerationOptions& options, int64_t horizon);

class TokenGenerator;

// One generated token. logprobs() ([vocab]) is computed on first use and valid until the next
// call of the generator's next().
struct TokenStep {
  int32_t token = 0;
  TokenGenerator* generator = nullptr;
  std::span<const float> logprobs() const;
};

// Whether tokens are picked by argmax over the logits where they are (the GPU moves back only
// token ids): greedy decoding (temp 0) with mlx-lm's default sampler and no logits processors.
bool greedy_on_device(const GenerationOptions& options, size_t processors);
// Whether the sampler and processors run where the logits are (DeviceSampler) on `device`: a GPU,
// the sampler of `options.sampling` without XTC, no custom sampler or extra processors.
// HEARTH_DEVICE_SAMPLING=0 keeps them on the host.
bool sample_on_device(const GenerationOptions& options, Device device);
// GenerationOptions::pipelined_decode when unset: on for a model on a GPU, unless
// HEARTH_PIPELINED_DECODE=0.
bool pipelined_by_default(const model::Model& model);
// argmax of each row of logits [R, V] computed on logits' device, as host ids.
std::vector<int32_t> argmax_rows(const Tensor& logits);

// mlx-lm's generate_step: prefill the prompt (all but its last token in chunks of
// prefill_step_size), then yield one token per call.
//
// Pipelined decode (GenerationOptions::pipelined_decode): where tokens are picked on the device
// (greedy, or DeviceSampler on a GPU) and the KV cache can be trimmed (standard, not quantized),
// next() queues the step that consumes token n, fed from the device where token n is, before it
// waits for token n, as mlx-lm's generate_step evaluates step n + 1 asynchronously before it
// yields token n: the GPU never idles while the host reads a token and launches the next step.
// The step queued ahead is dropped, its token trimmed off the cache and its sampler draw rewound,
// when the cache is asked for or the generator is destroyed: the cache then holds what it holds
// without pipelining.
class TokenGenerator {
 public:
  // `cache` may hold a prefix already (prompt caching); a fresh one is made otherwise.
  TokenGenerator(model::Model& model, std::vector<int32_t> prompt, const GenerationOptions& options,
                 std::shared_ptr<kv::KvCache> cache = nullptr);
  ~TokenGenerator();
  TokenGenerator(const TokenGenerator&) = delete;
  TokenGenerator& operator=(const TokenGenerator&) = delete;
  // The next token, or nullopt once max_tokens were produced.
  std::optional<TokenStep> next();
  // The sequence's cache (prompt and the tokens fed so far; a step queued ahead is dropped); a
  // new object once the cache was quantized (kv_bits).
  const kv::KvCache& cache();
  std::shared_ptr<kv::KvCache> shared_cache();
  // Whether steps are queued ahead of the token being read (pipelined greedy decode).
  bool pipelined() const { return pipelined_; }
  int64_t prompt_size() const { return int64_t(prompt_.size()); }
  // The last step's log-probabilities [vocab] (mlx-lm's logprobs: processors applied, then
  // log-softmax). A greedy step on the device computes them only here, on first use.
  std::span<const float> logprobs();

 private:
  // A step whose token, picked on the device, is on its way to the host.
  struct QueuedStep {
    Tensor logits;            // the step's logits, or its log-probabilities when normalized
    bool normalized = false;  // (DeviceSampler)
    Tensor id;                // i32 [1] on the model's device
    ops::ReadbackBuffer* readback = nullptr;
    std::optional<Rng> rng_before;  // the sampler's Rng before the step drew
  };
  void run_step(std::span<const int32_t> tokens);
  // Queues a step whose token is picked on the device (greedy or DeviceSampler); `device_token`
  // (model::SequenceInput) feeds it from the device.
  void queue_step(std::span<const int32_t> tokens, const Tensor& device_token = {});
  void drop_queued_steps();
  void forward(std::span<const int32_t> tokens, Tensor* logits, const Tensor& device_token = {});

  model::Model& model_;
  std::vector<int32_t> prompt_;
  GenerationOptions options_;
  Sampler sampler_;
  std::vector<LogitsProcessor> processors_;
  Rng rng_;
  std::shared_ptr<kv::KvCache> cache_;
  std::vector<int32_t> history_;
  std::vector<float> logprobs_, scratch_;
  std::optional<DeviceSampler> device_sampler_;
  // The step's logits (greedy on the device) or log-probabilities (DeviceSampler) on the device,
  // until logprobs() brings them to the host.
  Tensor step_logits_;
  bool step_normalized_ = false;
  int32_t pending_token_ = -1;
  // Tokens picked on the device (greedy or DeviceSampler on a GPU): steps queued and not yet
  // read, oldest first (two with pipelining), and the pinned buffers their ids come back
  // through, used in turn.
  bool greedy_on_device_ = false, tokens_on_device_ = false, pipelined_ = false;
  std::deque<QueuedStep> queued_;
  ops::ReadbackPair readbacks_;
  int produced_ = 0;
  bool started_ = false;
};

struct GenerationResponse {
  std::string text;  // the new piece of text (may be empty)
  int32_t token = 0;
  TokenGenerator* generator = nullptr;
  // The token's log-probabilities [vocab], computed on first use; valid during the callback.
  std::span<const float> logprobs() const { return generator->logprobs(); }
  int64_t prompt_tokens = 0;
  double prompt_tps = 0;
  int64_t generation_tokens = 0;
  double generation_tps = 0;
  double peak_memory_gb = 0;
  std::optional<std::string> finish_reason;  // "stop", "length" or none
};

// The EOS ids generation stops on: the model config's (generation_config.json included), or the
// tokenizer's when the config has none, plus `extra`.
std::vector<int32_t> eos_token_ids(const model::Model& model, const text::Tokenizer& tokenizer,
                                   std::span<const int32_t> extra = {});

// Encodes a text prompt as mlx-lm does: special tokens are added unless the text already starts
// with the BOS token.
std::vector<int32_t> encode_prompt(const text::Tokenizer& tokenizer, const std::string& prompt);

// Streams responses; `on_response` returns false to stop early. The last response carries the
// finish reason. `cache` may hold a prefix already (a loaded prompt cache); the prompt follows it.
void stream_generate(model::Model& model, const text::Tokenizer& tokenizer,
                     std::vector<int32_t> prompt, const GenerationOptions& options,
                     const std::function<bool(const GenerationResponse&)>& on_response,
                     std::shared_ptr<kv::KvCache> cache = nullptr);

std::string generate(model::Model& model, const text::Tokenizer& tokenizer,
                     std::vector<int32_t> prompt, const GenerationOptions& options);

}  // namespace hearth::gen
