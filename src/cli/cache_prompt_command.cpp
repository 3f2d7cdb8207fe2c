// `hearth cache_prompt`: mlx_lm.cache_prompt. Prefills a prompt and saves the cache in mlx-lm's
// prompt-cache file layout with the `model` and `tokenizer_config` metadata, for
// `hearth generate --prompt-cache-file` (or mlx_lm.generate) to continue from.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <optional>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/memory_stats.h"
#include "core/timer.h"
#include "kv/prompt_cache_file.h"

namespace hearth::cli {
namespace {

struct CachePromptArgs {
  std::optional<std::string> model;
  std::optional<std::string> eos_token;
  std::optional<int> max_kv_size;
  std::optional<std::string> prompt_cache_file;
  std::optional<std::string> prompt;
  std::optional<int> kv_bits;
  int kv_group_size = 64;
  int quantized_kv_start = 5000;
  int prefill_step_size = 2048;
  std::string device;  // empty: the GPU when there is one
  std::string matmul_precision = "bf16";
};

}  // namespace

int run_cache_prompt(const std::vector<std::string>& argv) {
  CachePromptArgs a;
  ArgParser p(
      "hearth cache_prompt",
      "Cache the state of a prompt to be reused with hearth generate (mlx_lm.cache_prompt).");
  p.add_optional_string({"--model"}, &a.model,
                        "The path to the local model directory or Hugging Face repo (in the local "
                        "cache). Default: the bundled model.");
  p.add_optional_string({"--eos-token"}, &a.eos_token, "End of sequence token for tokenizer");
  p.add_optional_int({"--max-kv-size"}, &a.max_kv_size, "Set the maximum key-value cache size");
  p.add_optional_string({"--prompt-cache-file"}, &a.prompt_cache_file,
                        "The file to save the prompt cache in (required)");
  p.add_optional_string({"--prompt"}, &a.prompt,
                        "Message to be processed by the model ('-' reads from stdin) (required)");
  p.add_optional_int({"--kv-bits"}, &a.kv_bits,
                     "Number of bits for KV cache quantization. Defaults to no quantization.");
  p.add_int({"--kv-group-size"}, &a.kv_group_size, "Group size for KV cache quantization.");
  p.add_int({"--quantized-kv-start"}, &a.quantized_kv_start,
            "When --kv-bits is set, start quantizing the KV cache from this step onwards.");
  p.add_int({"--prefill-step-size"}, &a.prefill_step_size,
            "Number of prompt tokens processed per forward pass");
  p.add_string({"--device"}, &a.device,
               "cpu or cuda[:N] (default: cuda when a GPU is present, else cpu)");
  add_matmul_precision_flag(p, &a.matmul_precision);
  if (!p.parse(argv)) return 0;
  std::string missing;
  if (!a.prompt_cache_file) missing += "--prompt-cache-file";
  if (!a.prompt) missing += std::string(missing.empty() ? "" : ", ") + "--prompt";
  if (!missing.empty()) throw UsageError("the following arguments are required: " + missing);
  if (a.prefill_step_size < 1) throw UsageError("argument --prefill-step-size: must be positive");

  gen::GenerationOptions options;
  set_kv_cache_flags(a.max_kv_size, a.kv_bits, a.kv_group_size, a.quantized_kv_start, options);
  options.prefill_step_size = a.prefill_step_size;
  // The prompt's last token runs through the model like the others; the one token sampled
  // from it is discarded (mlx-lm runs generate_step with max_tokens=0).
  options.max_tokens = 1;
  options.seed = 0;

  // mlx-lm records the tokenizer options it loaded with, for generate to load the same way.
  nlohmann::ordered_json tokenizer_config = {{"trust_remote_code", nullptr}};
  if (a.eos_token) tokenizer_config["eos_token"] = *a.eos_token;

  Device device = device_from_flag(a.device);
  std::filesystem::path dir = model_dir_from_flag(a.model);
  text::Tokenizer tokenizer = text::Tokenizer::from_dir(dir);
  if (a.eos_token && !tokenizer.token_to_id(*a.eos_token))
    fail(ErrorCode::invalid_argument, "--eos-token: '{}' is not a token of the vocabulary",
         *a.eos_token);
  std::unique_ptr<model::Model> model =
      model::load_model(dir, load_options(device, a.matmul_precision));

  std::string prompt = *a.prompt;
  if (prompt == "-")
    prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  std::vector<int32_t> ids;
  if (tokenizer.has_chat_template()) {
    // The user turn is left open so that generate's prompt continues it.
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    messages.push_back({{"role", "user"}, {"content", prompt}});
    text::ChatOptions chat;
    chat.add_generation_prompt = false;
    chat.continue_final_message = true;
    ids = tokenizer.encode(tokenizer.apply_chat_template(messages, chat), false);
  } else {
    ids = tokenizer.encode(prompt, true);
  }
  if (ids.empty()) fail(ErrorCode::invalid_argument, "--prompt: the prompt encodes to no tokens");

  std::shared_ptr<kv::KvCache> cache =
      make_kv_cache(*model, options, int64_t(ids.size()) + options.max_tokens);
  Stopwatch clock;
  size_t longest = 0;
  options.prompt_progress = [&](int64_t processed, int64_t) {
    char line[96];
    int n =
        std::snprintf(line, sizeof line, "\rProcessed %6lld tokens (%6.2f tok/s)",
                      (long long)processed, double(processed) / std::max(clock.seconds(), 1e-9));
    longest = std::max(longest, size_t(n));
    std::printf("%s%*s", line, int(longest - size_t(n)), "");
    std::fflush(stdout);
  };
  gen::TokenGenerator generator(*model, ids, options, cache);
  generator.next();
  std::printf("\n");
  std::printf("Peak memory: %.3f GB\n", double(memory::peak_bytes(device.kind)) / 1e9);
  std::printf("Saving...\n");
  std::fflush(stdout);

  std::map<std::string, std::string> metadata;
  metadata["model"] = a.model ? *a.model : dir.string();
  metadata["tokenizer_config"] = python_json_line(tokenizer_config);
  // The generator's cache: the one it was given, or its replacement once quantized (kv_bits).
  kv::save_prompt_cache(*a.prompt_cache_file, kv::export_cache_state(generator.cache()), metadata);
  return 0;
}

}  // namespace hearth::cli
