// Generation for several prompts at once: each prompt is prefilled, then every decode step runs
// all unfinished sequences through one forward pass (a ragged batch over the shared KV pool).
#pragma once

#include <vector>

#include "gen/generate.h"

namespace hearth::gen {

struct BatchStats {
  int64_t prompt_tokens = 0;
  double prompt_time = 0, prompt_tps = 0;
  int64_t generation_tokens = 0;
  double generation_time = 0, generation_tps = 0;
  double peak_memory_gb = 0;
};

struct BatchResult {
  std::vector<std::vector<int32_t>> tokens;  // generated ids per prompt (EOS excluded)
  std::vector<std::string> finish_reasons;   // "stop" or "length"
  BatchStats stats;
};

// Uses options.max_tokens (must be >= 0), sampling, processors, prefill_step_size and
// kv_block_size. Sequences stop at any id in `eos` (none: run to max_tokens).
BatchResult batch_generate(model::Model& model, const std::vector<std::vector<int32_t>>& prompts,
                           const GenerationOptions& options, std::span<const int32_t> eos = {});

}  // namespace hearth::gen
