#include "gen/generate.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/memory_stats.h"
#include "core/timer.h"
#include "kv/quantize_cache.h"
#include "ops/copy.h"
#include "ops/quantized_attention.h"
#include "ops/softmax.h"
#include "ops/topk.h"

namespace hearth::gen {

TokenGenerator::TokenGenerator(model::Model& model, std::vector<int32_t> prompt,
                               const GenerationOptions& options, std::shared_ptr<kv::KvCache> cache)
    : model_(model),
      prompt_(std::move(prompt)),
      options_(options),
      rng_(options.seed ? Rng(*options.seed) : Rng::from_entropy()),
      cache_(std::move(cache)) {
  if (prompt_.empty()) fail(ErrorCode::invalid_argument, "the prompt is empty");
  if (options_.prefill_step_size < 1)
    fail(ErrorCode::invalid_argument, "--prefill-step-size must be positive, got {}",
         options_.prefill_step_size);
  const int64_t vocab = model_.config().vocab_size;
  sampler_ = options_.sampler ? options_.sampler : make_sampler(options_.sampling, vocab);
  processors_ = make_logits_processors(options_.processors, vocab);
  for (const auto& p : options_.extra_processors) processors_.push_back(p);
  if (options_.kv_bits != 0) {
    ops::check_kv_quantization("--kv-bits/--kv-group-size", options_.kv_bits,
                               options_.kv_group_size, model_.config().head_dim);
    // mlx-lm: RotatingKVCache.to_quantized raises NotImplementedError.
    for (const kv::CachePolicy& p :
         cache_ ? std::vector<kv::CachePolicy>{} : cache_policies(model_, options_))
      if (p.rotating())
        fail(ErrorCode::unsupported,
             "--kv-bits: a rotating KV cache (--max-kv-size, or the ring cache of a sliding-window "
             "layer) cannot be quantized (mlx-lm has no rotating quantized cache)");
    if (cache_)
      for (int l = 0; l < cache_->n_layers(); ++l)
        if (cache_->policy(l).rotating())
          fail(ErrorCode::unsupported,
               "--kv-bits: layer {} of the given cache is a rotating cache, which cannot be "
               "quantized (mlx-lm has no rotating quantized cache)",
               l);
  }
  if (!cache_) {
    int64_t horizon = int64_t(prompt_.size()) +
                      (options_.max_tokens >= 0
                           ? options_.max_tokens
                           : std::max<int64_t>(model_.config().max_position_embeddings, 4096));
    cache_ = make_prompt_cache(model_, options_, horizon);
  }
  history_ = prompt_;
  if (sample_on_device(options_, model_.device()))
    device_sampler_.emplace(options_.sampling, options_.processors, model_.device());
  greedy_on_device_ = greedy_on_device(options_, processors_.size());
  if (greedy_on_device_ || (device_sampler_ && !model_.device().is_cpu())) {
    tokens_on_device_ = true;
    readbacks_ = ops::ReadbackPair(model_.device(), sizeof(int32_t));
    // Only a cache that can give back the token of a step queued ahead (a rotating one may have
    // overwritten a slot; a quantized one is replaced between steps).
    bool trimmable = options_.kv_bits == 0 && cache_->is_trimmable();
    for (int l = 0; l < cache_->n_layers(); ++l) trimmable &= !cache_->policy(l).rotating();
    pipelined_ = trimmable && options_.pipelined_decode.value_or(pipelined_by_default(model_));
  }
}

TokenGenerator::~TokenGenerator() {
  try {
    drop_queued_steps();
  } catch (const std::exception&) {
    // Only bookkeeping is left to undo; a destructor must not throw.
  }
}

const kv::KvCache& TokenGenerator::cache() {
  drop_queued_steps();
  return *cache_;
}

std::shared_ptr<kv::KvCache> TokenGenerator::shared_cache() {
  drop_queued_steps();
  return cache_;
}

std::vector<kv::CachePolicy> cache_policies(const model::Model& model,
                                            const GenerationOptions& options) {
  if (options.max_kv_size < 0)
    fail(ErrorCode::invalid_argument, "--max-kv-size must be >= 0, got {}", options.max_kv_size);
  if (options.max_kv_size > 0 && options.max_kv_size <= 4)
    fail(ErrorCode::invalid_argument,
         "--max-kv-size {} leaves no room next to the 4 tokens a rotating cache keeps",
         options.max_kv_size);
  std::vector<kv::CachePolicy> policies;
  for (int window : model.config().sliding_window) {
    kv::CachePolicy p;
    if (window > 0 && options.rotating_window_layers) {
      p.max_size = window;
    } else if (window == 0 && options.max_kv_size > 0) {
      p.max_size = options.max_kv_size;
      p.keep = 4;
    }
    policies.push_back(p);
  }
  return policies;
}

int64_t cache_blocks_needed(const std::vector<kv::CachePolicy>& policies,
                            const GenerationOptions& options, int64_t horizon) {
  const int bs = options.kv_block_size;
  if (bs < 1) fail(ErrorCode::invalid_argument, "kv_block_size must be positive, got {}", bs);
  // Per layer group: a standard cache the whole horizon (plus the copy of a last block shared by a
  // snapshot); a rotating one its buffer, up to max_size + prefill_step_size - 1 slots, twice (the
  // buffer being rebuilt, or blocks a snapshot holds). The CPU reserves address space only: pages
  // are committed as blocks fill.
  int64_t blocks = 0;
  std::vector<kv::CachePolicy> seen;
  for (const kv::CachePolicy& p : policies) {
    if (std::find(seen.begin(), seen.end(), p) != seen.end()) continue;
    seen.push_back(p);
    if (p.rotating()) {
      int64_t slots = std::min<int64_t>(horizon, p.max_size + options.prefill_step_size);
      blocks += 2 * ((slots + bs - 1) / bs + 1);
    } else {
      blocks += (horizon + bs - 1) / bs + 2;
    }
  }
  return blocks;
}

std::shared_ptr<kv::KvCache> make_prompt_cache(const model::Model& model,
                                               const GenerationOptions& options, int64_t horizon) {
  std::vector<kv::CachePolicy> policies = cache_policies(model, options);
  auto pool = std::make_shared<kv::BlockPool>(model.kv_layout(options.kv_block_size),
                                              cache_blocks_needed(policies, options, horizon));
  return std::make_shared<kv::KvCache>(pool, policies);
}

void TokenGenerator::forward(std::span<const int32_t> tokens, Tensor* logits,
                             const Tensor& device_token) {
  model::SequenceInput in{
      .tokens = tokens, .cache = cache_.get(), .all_logits = false, .device_token = device_token};
  Tensor out = model_.forward(std::span<const model::SequenceInput>(&in, 1));
  if (logits) *logits = out;
  // mlx-lm's maybe_quantize_kv_cache runs after every model call, prefill chunks included.
  cache_ = kv::maybe_quantize_cache(
      cache_, {options_.kv_bits, options_.kv_group_size, options_.quantized_kv_start});
}

bool greedy_on_device(const GenerationOptions& options, size_t processors) {
  return !options.sampler && options.sampling.temp == 0.0f && processors == 0;
}

bool pipelined_by_default(const model::Model& model) {
  if (model.device().is_cpu()) return false;
  const char* env = std::getenv("HEARTH_PIPELINED_DECODE");
  return !(env && std::string(env) == "0");
}

bool sample_on_device(const GenerationOptions& options, Device device) {
  if (device.is_cpu() || options.sampler || options.sampling.xtc_probability > 0 ||
      !options.extra_processors.empty())
    return false;
  const char* env = std::getenv("HEARTH_DEVICE_SAMPLING");
  return !(env && std::string(env) == "0");
}

std::vector<int32_t> argmax_rows(const Tensor& logits) {
  Tensor ids = Tensor::empty({logits.dim(0)}, DType::i32, logits.device());
  ops::argmax(logits, ids);
  return ops::to_device(ids, Device::cpu()).to_vector<int32_t>();
}

std::span<const float> TokenStep::logprobs() const {
  return generator->logprobs();
}

std::span<const float> TokenGenerator::logprobs() {
  if (step_logits_.defined()) {
    Tensor normalized = step_logits_;
    if (!step_normalized_) {
      normalized = Tensor::empty(step_logits_.shape(), DType::f32, step_logits_.device());
      ops::log_softmax(step_logits_, normalized);
    }
    logprobs_ = ops::to_device(normalized, Device::cpu()).to_vector<float>();
    step_logits_ = Tensor();
  }
  return logprobs_;
}

void TokenGenerator::queue_step(std::span<const int32_t> tokens, const Tensor& device_token) {
  QueuedStep s;
  if (device_sampler_ && pipelined_) s.rng_before = rng_;  // what drop_queued_steps rewinds to
  Tensor logits;
  forward(tokens, &logits, device_token);
  if (greedy_on_device_) {
    // argmax over the logits equals argmax over their log-softmax (up to ties that the rounding
    // of the normalization can create, where HF's greedy search also takes the logits' argmax).
    s.id = Tensor::empty({1}, DType::i32, logits.device());
    ops::argmax(logits, s.id);
    s.logits = logits;
  } else {
    // The history the processors see: prompt and generated ids, and the newest, still on the
    // device, when this step was fed from there.
    const std::span<const int32_t> history(history_);
    s.id = device_sampler_->sample_ids(logits, {&history, 1}, rng_, &s.logits,
                                       device_token.defined() ? &device_token : nullptr);
    s.normalized = true;
  }
  s.readback = readbacks_.next();
  s.readback->download(s.id);
  queued_.push_back(std::move(s));
}

void TokenGenerator::drop_queued_steps() {
  if (queued_.empty()) return;
  cache_->trim(int64_t(queued_.size()));
  // The draws of the dropped steps are drawn again by the steps that replace them.
  if (queued_.front().rng_before) rng_ = *queued_.front().rng_before;
  queued_.clear();
}

void TokenGenerator::run_step(std::span<const int32_t> tokens) {
  if (tokens_on_device_) {
    if (queued_.empty()) queue_step(tokens);
    // The step after this one, fed by this one's id on the device, unless max_tokens ends
    // generation with this token.
    if (pipelined_ && (options_.max_tokens < 0 || produced_ + 1 < options_.max_tokens)) {
      static constexpr int32_t kPlaceholder = 0;
      queue_step({&kPlaceholder, 1}, queued_.back().id);
    }
    QueuedStep s = std::move(queued_.front());
    queued_.pop_front();
    pending_token_ = *static_cast<const int32_t*>(s.readback->wait());
    step_logits_ = s.logits;
    step_normalized_ = s.normalized;
    return;
  }
  Tensor logits;
  forward(tokens, &logits);
  const int64_t vocab = logits.dim(1);
  step_logits_ = Tensor();
  if (processors_.empty()) {
    // Normalize where the logits are (on the GPU with CUDA) and move only the result: a
    // vocabulary-sized log-softmax on the host costs as much as a small model's whole step.
    Tensor normalized = Tensor::empty(logits.shape(), DType::f32, logits.device());
    ops::log_softmax(logits, normalized);
    logprobs_ = ops::to_device(normalized, Device::cpu()).to_vector<float>();
  } else {
    logprobs_ = ops::to_device(logits, Device::cpu()).to_vector<float>();
    for (const auto& p : processors_) p(history_, logprobs_);
    log_softmax_inplace(logprobs_);
  }
  scratch_ = logprobs_;
  HEARTH_CHECK(int64_t(scratch_.size()) == vocab);
  pending_token_ = sampler_(scratch_, rng_);
}

std::optional<TokenStep> TokenGenerator::next() {
  if (options_.max_tokens >= 0 && produced_ >= options_.max_tokens) return std::nullopt;
  if (!started_) {
    started_ = true;
    const int64_t total = int64_t(prompt_.size());
    int64_t done = 0;
    if (options_.prompt_progress) options_.prompt_progress(0, total);
    while (total - done > 1) {
      int64_t n = std::min<int64_t>(options_.prefill_step_size, total - done - 1);
      forward(std::span<const int32_t>(prompt_).subspan(size_t(done), size_t(n)), nullptr);
      done += n;
      if (options_.prompt_progress) options_.prompt_progress(done, total);
    }
    run_step(std::span<const int32_t>(prompt_).subspan(size_t(done)));
    if (options_.prompt_progress) options_.prompt_progress(total, total);
  } else {
    int32_t last = history_.back();
    run_step(std::span<const int32_t>(&last, 1));
  }
  ++produced_;
  history_.push_back(pending_token_);
  return TokenStep{pending_token_, this};
}

std::vector<int32_t> eos_token_ids(const model::Model& model, const text::Tokenizer& tokenizer,
                                   std::span<const int32_t> extra) {
  std::vector<int32_t> ids = model.config().eos_token_ids;
  if (ids.empty()) ids = tokenizer.eos_token_ids();
  for (int32_t id : extra) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

std::vector<int32_t> encode_prompt(const text::Tokenizer& tokenizer, const std::string& prompt) {
  bool add_special = true;
  if (auto bos = tokenizer.bos_token_id()) {
    if (auto bos_text = tokenizer.id_to_token(*bos)) add_special = prompt.rfind(*bos_text, 0) != 0;
  }
  return tokenizer.encode(prompt, add_special);
}

void stream_generate(model::Model& model, const text::Tokenizer& tokenizer,
                     std::vector<int32_t> prompt, const GenerationOptions& options,
                     const std::function<bool(const GenerationResponse&)>& on_response,
                     std::shared_ptr<kv::KvCache> cache) {
  std::vector<int32_t> eos = eos_token_ids(model, tokenizer, options.extra_eos_token_ids);
  auto is_eos = [&](int32_t t) { return std::binary_search(eos.begin(), eos.end(), t); };
  const int64_t prompt_tokens = int64_t(prompt.size());
  TokenGenerator generator(model, std::move(prompt), options, std::move(cache));
  std::unique_ptr<text::StreamingDetokenizer> detokenizer = tokenizer.make_detokenizer();

  GenerationResponse r;
  r.prompt_tokens = prompt_tokens;
  Stopwatch clock;
  int64_t n = 0;
  bool any = false;
  while (auto step = generator.next()) {
    if (n == 0) {
      r.prompt_tps = double(prompt_tokens) / std::max(clock.seconds(), 1e-9);
      clock.restart();
    }
    any = true;
    r.token = step->token;
    r.generator = &generator;
    r.generation_tokens = n + 1;
    if (is_eos(step->token)) break;
    detokenizer->add_token(step->token);
    if (options.max_tokens >= 0 && n + 1 == options.max_tokens) break;
    r.text = detokenizer->take_text();
    r.generation_tps = double(n + 1) / std::max(clock.seconds(), 1e-9);
    r.peak_memory_gb = double(memory::peak_bytes(model.device().kind)) / 1e9;
    if (!on_response(r)) return;
    ++n;
  }
  if (!any) return;  // max_tokens == 0
  r.text = detokenizer->take_text() + detokenizer->finalize();
  r.generation_tps = double(r.generation_tokens) / std::max(clock.seconds(), 1e-9);
  r.peak_memory_gb = double(memory::peak_bytes(model.device().kind)) / 1e9;
  r.finish_reason = is_eos(r.token) ? "stop" : "length";
  on_response(r);
}

std::string generate(model::Model& model, const text::Tokenizer& tokenizer,
                     std::vector<int32_t> prompt, const GenerationOptions& options) {
  std::string text;
  stream_generate(model, tokenizer, std::move(prompt), options, [&](const GenerationResponse& r) {
    text += r.text;
    return true;
  });
  return text;
}

}  // namespace hearth::gen
