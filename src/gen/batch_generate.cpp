#include "gen/batch_generate.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <optional>

#include "core/memory_stats.h"
#include "core/timer.h"
#include "ops/copy.h"
#include "ops/graph.h"
#include "ops/topk.h"

namespace hearth::gen {
namespace {

void finish_stats(const model::Model& model, BatchStats& stats, const Stopwatch& clock,
                  int64_t generated) {
  stats.generation_time = clock.seconds();
  stats.generation_tokens = generated;
  stats.prompt_tps = double(stats.prompt_tokens) / std::max(stats.prompt_time, 1e-9);
  stats.generation_tps = double(generated) / std::max(stats.generation_time, 1e-9);
  stats.peak_memory_gb = double(memory::peak_bytes(model.device().kind)) / 1e9;
}

// Greedy decode steps of the active sequences, argmax on the device, until none is active;
// returns the tokens produced (stop tokens included). produced[s]: sequence s's tokens so far.
// Pipelined (TokenGenerator's rule, generate.h): the step after the one being read is queued first,
// fed by that step's argmax on the device, for the sequences that max_tokens lets continue; a
// sequence that stops on a token read meanwhile wastes its row of that step (its cache is dropped
// with the batch).
int64_t greedy_decode(model::Model& model, const GenerationOptions& options,
                      std::vector<std::unique_ptr<kv::KvCache>>& caches,
                      const std::vector<int32_t>& next, const std::vector<bool>& active,
                      std::vector<int64_t> produced,
                      const std::function<void(size_t, int32_t)>& accept) {
  struct Queued {
    Tensor ids;  // i32 [rows] on the device
    ops::ReadbackBuffer* readback = nullptr;
    std::vector<size_t> which;  // the sequence of each row
  };
  const bool pipelined = options.pipelined_decode.value_or(pipelined_by_default(model));
  ops::ReadbackPair readbacks(model.device(), caches.size() * sizeof(int32_t));
  std::deque<Queued> queued;
  // Queues a step of `which`; `from` (a queued step) feeds row r from its row from_rows[r].
  auto queue = [&](std::vector<size_t> which, const Queued* from,
                   const std::vector<int64_t>& from_rows) {
    std::vector<model::SequenceInput> batch;
    for (size_t r = 0; r < which.size(); ++r) {
      const size_t s = which[r];
      batch.push_back({.tokens = std::span<const int32_t>(&next[s], 1), .cache = caches[s].get()});
      if (from) batch.back().device_token = from->ids.slice(0, from_rows[r], from_rows[r] + 1);
      ++produced[s];  // read or in flight
    }
    Tensor logits = model.forward(batch);
    Queued q{Tensor::empty({int64_t(which.size())}, DType::i32, logits.device()), readbacks.next(),
             std::move(which)};
    ops::argmax(logits, q.ids);
    q.readback->download(q.ids);
    queued.push_back(std::move(q));
  };
  int64_t generated = 0;
  for (;;) {
    if (queued.empty()) {
      std::vector<size_t> which;
      for (size_t s = 0; s < caches.size(); ++s)
        if (active[s]) which.push_back(s);
      if (which.empty()) break;
      queue(std::move(which), nullptr, {});
    }
    if (pipelined) {
      std::vector<size_t> which;
      std::vector<int64_t> rows;
      const Queued& last = queued.back();
      for (size_t r = 0; r < last.which.size(); ++r) {
        const size_t s = last.which[r];
        if (active[s] && produced[s] < options.max_tokens) {
          which.push_back(s);
          rows.push_back(int64_t(r));
        }
      }
      if (!which.empty()) queue(std::move(which), &last, rows);
    }
    Queued q = std::move(queued.front());
    queued.pop_front();
    const auto* ids = static_cast<const int32_t*>(q.readback->wait());
    for (size_t r = 0; r < q.which.size(); ++r) {
      if (!active[q.which[r]]) continue;  // stopped on a token read after this step was queued
      accept(q.which[r], ids[r]);
      ++generated;
    }
  }
  return generated;
}

}  // namespace

BatchResult batch_generate(model::Model& model, const std::vector<std::vector<int32_t>>& prompts,
                           const GenerationOptions& options, std::span<const int32_t> eos) {
  if (prompts.empty()) fail(ErrorCode::invalid_argument, "batch_generate needs prompts");
  if (options.max_tokens < 0)
    fail(ErrorCode::invalid_argument, "batch_generate needs a finite max_tokens");
  if (options.kv_bits != 0)
    fail(ErrorCode::unsupported,
         "batch_generate: a quantized KV cache (kv_bits {}) is not supported for batches yet",
         options.kv_bits);
  const size_t S = prompts.size();
  const int64_t vocab = model.config().vocab_size;
  Sampler sampler = options.sampler ? options.sampler : make_sampler(options.sampling, vocab);
  std::vector<LogitsProcessor> processors = make_logits_processors(options.processors, vocab);
  for (const auto& p : options.extra_processors) processors.push_back(p);
  Rng rng = options.seed ? Rng(*options.seed) : Rng::from_entropy();
  const bool greedy = greedy_on_device(options, processors.size());
  std::optional<DeviceSampler> device_sampler;
  if (!greedy && sample_on_device(options, model.device()))
    device_sampler.emplace(options.sampling, options.processors, model.device());

  // One pool for the batch; every sequence gets generate's cache policies (rings on window
  // layers, --max-kv-size).
  const std::vector<kv::CachePolicy> policies = cache_policies(model, options);
  int64_t blocks = 0;
  for (const auto& p : prompts) {
    if (p.empty()) fail(ErrorCode::invalid_argument, "batch_generate: an empty prompt");
    blocks += cache_blocks_needed(policies, options, int64_t(p.size()) + options.max_tokens);
  }
  auto pool = std::make_shared<kv::BlockPool>(model.kv_layout(options.kv_block_size), blocks);
  std::vector<std::unique_ptr<kv::KvCache>> caches;
  std::vector<std::vector<int32_t>> history(prompts);
  BatchResult result;
  result.tokens.resize(S);
  result.finish_reasons.assign(S, "length");
  std::vector<int32_t> next(S);
  std::vector<bool> active(S, options.max_tokens > 0);

  auto sample_row = [&](size_t s, std::vector<float> row) {
    for (const auto& p : processors) p(history[s], row);
    log_softmax_inplace(row);
    return sampler(row, rng);
  };
  // Rows of logits [R, V] for the sequences `which`, on the device (same Rng order as sample_row).
  auto sample_on_device_rows = [&](Tensor& logits, const std::vector<size_t>& which) {
    std::vector<std::span<const int32_t>> histories;
    for (size_t s : which) histories.emplace_back(history[s]);
    return device_sampler->sample(logits, histories, rng);
  };
  auto accept = [&](size_t s, int32_t token) {
    if (std::find(eos.begin(), eos.end(), token) != eos.end()) {
      active[s] = false;
      result.finish_reasons[s] = "stop";
      return;
    }
    result.tokens[s].push_back(token);
    history[s].push_back(token);
    next[s] = token;
    if (int64_t(result.tokens[s].size()) >= options.max_tokens) active[s] = false;
  };

  Stopwatch clock;
  for (size_t s = 0; s < S; ++s) {
    caches.push_back(std::make_unique<kv::KvCache>(pool, policies));
    const auto& p = prompts[s];
    result.stats.prompt_tokens += int64_t(p.size());
    if (options.max_tokens == 0) continue;
    for (size_t done = 0; done < p.size();) {
      size_t n = std::min(p.size() - done, size_t(options.prefill_step_size));
      model::SequenceInput in{.tokens = std::span<const int32_t>(p).subspan(done, n),
                              .cache = caches[s].get(),
                              .all_logits = false};
      Tensor logits = model.forward(std::span<const model::SequenceInput>(&in, 1));
      done += n;
      if (done < p.size()) continue;
      if (greedy)
        accept(s, argmax_rows(logits)[0]);
      else if (device_sampler && !logits.device().is_cpu())
        accept(s, sample_on_device_rows(logits, {s})[0]);
      else
        accept(s, sample_row(s, ops::to_device(logits, Device::cpu()).to_vector<float>()));
    }
  }
  result.stats.prompt_time = clock.seconds();
  clock.restart();
  int64_t generated = 0;
  for (size_t s = 0; s < S; ++s) generated += int64_t(result.tokens[s].size());
  if (greedy) {
    std::vector<int64_t> produced;
    for (const auto& t : result.tokens) produced.push_back(int64_t(t.size()));
    generated += greedy_decode(model, options, caches, next, active, produced, accept);
    finish_stats(model, result.stats, clock, generated);
    return result;
  }
  for (;;) {
    std::vector<model::SequenceInput> batch;
    std::vector<size_t> which;
    for (size_t s = 0; s < S; ++s) {
      if (!active[s]) continue;
      batch.push_back({.tokens = std::span<const int32_t>(&next[s], 1), .cache = caches[s].get()});
      which.push_back(s);
    }
    if (batch.empty()) break;
    Tensor logits = model.forward(batch);
    if (device_sampler && !logits.device().is_cpu()) {
      const std::vector<int32_t> ids = sample_on_device_rows(logits, which);
      for (size_t r = 0; r < which.size(); ++r) accept(which[r], ids[r]);
      generated += int64_t(which.size());
      continue;
    }
    std::vector<float> all = ops::to_device(logits, Device::cpu()).to_vector<float>();
    for (size_t r = 0; r < which.size(); ++r) {
      std::vector<float> row(all.begin() + int64_t(r) * vocab,
                             all.begin() + int64_t(r + 1) * vocab);
      accept(which[r], sample_row(which[r], std::move(row)));
      ++generated;
    }
  }
  finish_stats(model, result.stats, clock, generated);
  return result;
}

}  // namespace hearth::gen
