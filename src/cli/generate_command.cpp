// `hearth generate`: mlx_lm.generate's flags, defaults and output.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <optional>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/timer.h"
#include "gen/generate.h"
#include "kv/prompt_cache_file.h"

namespace hearth::cli {
namespace {

struct GenerateArgs {
  std::optional<std::string> model;
  std::vector<std::string> extra_eos_token;
  std::optional<std::string> system_prompt;
  std::string prompt = "hello";
  std::optional<std::string> prefill_response;
  int max_tokens = 100;
  float temp = 0.0f, top_p = 1.0f, min_p = 0.0f;
  int top_k = 0;
  float xtc_probability = 0.0f, xtc_threshold = 0.0f;
  int min_tokens_to_keep = 1;
  std::optional<int> seed;
  bool ignore_chat_template = false;
  std::optional<std::string> chat_template_config;
  bool verbose = true;
  int prefill_step_size = 2048;
  std::optional<int> max_kv_size;
  std::optional<std::string> prompt_cache_file;
  std::optional<int> kv_bits;
  int kv_group_size = 64;
  int quantized_kv_start = 5000;
  std::string device;  // empty: the GPU when there is one
  std::string matmul_precision = "bf16";
};

// A prompt cache loaded from --prompt-cache-file, checked against the flags as mlx-lm does.
struct LoadedPromptCache {
  std::filesystem::path path;
  kv::PromptCacheContents contents;
  nlohmann::ordered_json tokenizer_config;

  const std::string& metadata(const std::string& key) const {
    auto it = contents.metadata.find(key);
    if (it == contents.metadata.end())
      fail(ErrorCode::format, "{}: the prompt cache has no '{}' metadata (key '1.{}')",
           path.string(), key, key);
    return it->second;
  }
};

LoadedPromptCache load_prompt_cache_flag(const GenerateArgs& a) {
  LoadedPromptCache c;
  c.path = *a.prompt_cache_file;
  c.contents = kv::load_prompt_cache(c.path);
  const kv::LayerCacheState& first = c.contents.layers.front();
  if (first.class_name == kv::kQuantizedCacheClass) {
    // meta_state (offset, group_size, bits)
    if (first.meta_tuple.size() != 3)
      fail(ErrorCode::format,
           "{}: a QuantizedKVCache meta_state has 3 entries (key '0.0.*'), got {}", c.path.string(),
           first.meta_tuple.size());
    if (a.kv_bits && std::to_string(*a.kv_bits) != first.meta_tuple[2])
      fail(ErrorCode::invalid_argument,
           "--kv-bits ({}) does not match the kv cache loaded from --prompt-cache-file ({} bits)",
           *a.kv_bits, first.meta_tuple[2]);
    if (std::to_string(a.kv_group_size) != first.meta_tuple[1])
      fail(ErrorCode::invalid_argument,
           "--kv-group-size ({}) does not match the kv cache loaded from --prompt-cache-file "
           "(group size {})",
           a.kv_group_size, first.meta_tuple[1]);
  }
  const std::string& config = c.metadata("tokenizer_config");
  try {
    c.tokenizer_config = nlohmann::ordered_json::parse(config);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::format, "{}: metadata '1.tokenizer_config' is not JSON ({})", c.path.string(),
         e.what());
  }
  if (!c.tokenizer_config.is_object())
    fail(ErrorCode::format, "{}: metadata '1.tokenizer_config' is not a JSON object",
         c.path.string());
  return c;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
    s.replace(pos, from.size(), to);
  return s;
}

}  // namespace

int run_generate(const std::vector<std::string>& argv) {
  GenerateArgs a;
  ArgParser p("hearth generate", "Generate text from a model (mlx_lm.generate).");
  p.add_optional_string({"--model"}, &a.model,
                        "The path to the local model directory or Hugging Face repo (in the local "
                        "cache). Default: the bundled model.");
  p.add_list({"--extra-eos-token"}, &a.extra_eos_token,
             "Add tokens in the list of eos tokens that stop generation.");
  p.add_optional_string({"--system-prompt"}, &a.system_prompt,
                        "System prompt to be used for the chat template");
  p.add_string({"--prompt", "-p"}, &a.prompt,
               "Message to be processed by the model ('-' reads from stdin)");
  p.add_optional_string({"--prefill-response"}, &a.prefill_response,
                        "Prefill response to be used for the chat template");
  p.add_int({"--max-tokens", "-m"}, &a.max_tokens, "Maximum number of tokens to generate");
  p.add_float({"--temp"}, &a.temp, "Sampling temperature");
  p.add_float({"--top-p"}, &a.top_p, "Sampling top-p");
  p.add_float({"--min-p"}, &a.min_p, "Sampling min-p");
  p.add_int({"--top-k"}, &a.top_k, "Sampling top-k");
  p.add_float({"--xtc-probability"}, &a.xtc_probability,
              "Probability of XTC sampling to happen each next token");
  p.add_float({"--xtc-threshold"}, &a.xtc_threshold,
              "Thresold the probs of each next token candidate to be sampled by XTC");
  p.add_int({"--min-tokens-to-keep"}, &a.min_tokens_to_keep,
            "Minimum tokens to keep for min-p sampling.");
  p.add_optional_int({"--seed"}, &a.seed, "PRNG seed");
  p.add_flag({"--ignore-chat-template"}, &a.ignore_chat_template,
             "Use the raw prompt without the tokenizer's chat template.");
  p.add_optional_string({"--chat-template-config"}, &a.chat_template_config,
                        "Additional config for `apply_chat_template`: a JSON object of keyword "
                        "arguments.");
  p.add_bool({"--verbose"}, &a.verbose,
             "Log verbose output when 'True' or 'T' or only print the response when 'False' or "
             "'F'");
  p.add_int({"--prefill-step-size"}, &a.prefill_step_size,
            "Number of prompt tokens processed per forward pass during prefill");
  p.add_optional_int({"--max-kv-size"}, &a.max_kv_size, "Set the maximum key-value cache size");
  p.add_optional_string({"--prompt-cache-file"}, &a.prompt_cache_file,
                        "A file containing saved KV caches to avoid recomputing them");
  p.add_optional_int({"--kv-bits"}, &a.kv_bits,
                     "Number of bits for KV cache quantization. Defaults to no quantization.");
  p.add_int({"--kv-group-size"}, &a.kv_group_size, "Group size for KV cache quantization.");
  p.add_int({"--quantized-kv-start"}, &a.quantized_kv_start,
            "When --kv-bits is set, start quantizing the KV cache from this step onwards.");
  p.add_string({"--device"}, &a.device,
               "cpu or cuda[:N] (default: cuda when a GPU is present, else cpu)");
  add_matmul_precision_flag(p, &a.matmul_precision);
  if (!p.parse(argv)) return 0;
  if (a.max_tokens < -1)
    throw UsageError("argument --max-tokens: must be >= 0 (or -1 for no limit)");
  if (a.prefill_step_size < 1) throw UsageError("argument --prefill-step-size: must be positive");

  nlohmann::ordered_json template_kwargs = nlohmann::ordered_json::object();
  if (a.chat_template_config) {
    try {
      template_kwargs = nlohmann::ordered_json::parse(*a.chat_template_config);
    } catch (const nlohmann::json::exception& e) {
      throw UsageError(std::string("argument --chat-template-config: invalid JSON: ") + e.what());
    }
    if (!template_kwargs.is_object())
      throw UsageError("argument --chat-template-config: expected a JSON object");
  }

  gen::GenerationOptions options;
  set_kv_cache_flags(a.max_kv_size, a.kv_bits, a.kv_group_size, a.quantized_kv_start, options);

  // With a prompt cache the model comes from the file's metadata; naming another is an error.
  std::optional<LoadedPromptCache> cached;
  Stopwatch load_clock;  // reading and importing the prompt cache: part of time to first token
  std::optional<std::string> model_flag = a.model;
  double cache_read_seconds = 0;
  if (a.prompt_cache_file) {
    cached = load_prompt_cache_flag(a);
    cache_read_seconds = load_clock.seconds();
    const std::string& cached_model = cached->metadata("model");
    if (!model_flag)
      model_flag = cached_model;
    else if (*model_flag != cached_model)
      fail(ErrorCode::invalid_argument,
           "Providing a different model ({}) than that used to create the prompt cache ({}) is "
           "an error.",
           *model_flag, cached_model);
  }

  Device device = device_from_flag(a.device);
  std::filesystem::path dir = model_dir_from_flag(model_flag);
  text::Tokenizer tokenizer = text::Tokenizer::from_dir(dir);
  std::unique_ptr<model::Model> model =
      model::load_model(dir, load_options(device, a.matmul_precision));

  // The eos_token cache_prompt was given stops generation here too.
  if (cached && cached->tokenizer_config.contains("eos_token") &&
      cached->tokenizer_config["eos_token"].is_string()) {
    std::string token = cached->tokenizer_config["eos_token"].get<std::string>();
    auto id = tokenizer.token_to_id(token);
    if (!id)
      fail(ErrorCode::invalid_argument,
           "{}: tokenizer_config eos_token '{}' is not a token of the vocabulary",
           cached->path.string(), token);
    options.extra_eos_token_ids.push_back(*id);
  }
  for (const auto& token : a.extra_eos_token) {
    auto id = tokenizer.token_to_id(token);
    if (!id)
      fail(ErrorCode::invalid_argument, "--extra-eos-token: '{}' is not a token of the vocabulary",
           token);
    options.extra_eos_token_ids.push_back(*id);
  }

  std::string prompt = replace_all(replace_all(a.prompt, "\\n", "\n"), "\\t", "\t");
  if (prompt == "-")
    prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  std::vector<int32_t> ids;
  if (!a.ignore_chat_template && tokenizer.has_chat_template()) {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    if (a.system_prompt) messages.push_back({{"role", "system"}, {"content", *a.system_prompt}});
    messages.push_back({{"role", "user"}, {"content", prompt}});
    text::ChatOptions chat;
    if (a.prefill_response) {
      messages.push_back({{"role", "assistant"}, {"content", *a.prefill_response}});
      chat.continue_final_message = true;
      chat.add_generation_prompt = false;
    }
    chat.extra = template_kwargs;
    std::string rendered = tokenizer.apply_chat_template(messages, chat);
    if (cached) {
      // The cache holds the conversation up to the user's text: keep what the template puts from
      // the user's text on, found by rendering a sentinel in its place (template kwargs left out,
      // as mlx-lm does).
      messages.back()["content"] = "<query>";
      text::ChatOptions plain;
      plain.add_generation_prompt = chat.add_generation_prompt;
      plain.continue_final_message = chat.continue_final_message;
      std::string test_prompt = tokenizer.apply_chat_template(messages, plain);
      size_t at = test_prompt.find("<query>");
      if (at == std::string::npos)
        fail(ErrorCode::internal, "the chat template dropped the <query> sentinel");
      rendered = rendered.substr(std::min(at, rendered.size()));
    }
    ids = tokenizer.encode(rendered, false);
  } else {
    ids = tokenizer.encode(prompt, true);
  }

  options.max_tokens = a.max_tokens;
  options.prefill_step_size = a.prefill_step_size;
  if (a.seed) options.seed = uint64_t(int64_t(*a.seed));
  options.sampling.temp = a.temp;
  options.sampling.top_p = a.top_p;
  options.sampling.min_p = a.min_p;
  options.sampling.top_k = a.top_k;
  options.sampling.min_tokens_to_keep = a.min_tokens_to_keep;
  options.sampling.xtc_probability = a.xtc_probability;
  options.sampling.xtc_threshold = a.xtc_threshold;
  // mlx-lm exempts the newline token(s) and EOS from XTC.
  options.sampling.xtc_special_tokens = tokenizer.encode("\n", false);
  for (int32_t id : gen::eos_token_ids(*model, tokenizer, options.extra_eos_token_ids))
    options.sampling.xtc_special_tokens.push_back(id);

  if (a.verbose) std::printf("==========\n");
  std::string text;
  gen::GenerationResponse last;
  int64_t cached_tokens = 0;
  if (cached) {
    const Tensor& keys = cached->contents.layers.front().arrays.front().second;
    cached_tokens = keys.ndim() == 4 ? keys.dim(2) : 0;
  }
  const int64_t horizon =
      cached_tokens + int64_t(ids.size()) +
      (a.max_tokens >= 0 ? a.max_tokens
                         : std::max<int64_t>(model->config().max_position_embeddings, 4096));
  std::shared_ptr<kv::KvCache> cache;
  load_clock.restart();
  if (cached)
    cache = kv::cache_from_state(model->kv_layout(options.kv_block_size), cached->contents.layers,
                                 horizon - cached_tokens, cached->path.string());
  else
    cache = make_kv_cache(*model, options, horizon);
  const double cache_load_seconds = load_clock.seconds();

  auto on_response = [&](const gen::GenerationResponse& r) {
    if (a.verbose) {
      std::fwrite(r.text.data(), 1, r.text.size(), stdout);
      std::fflush(stdout);
    }
    text += r.text;
    last = r;
    return true;
  };
  gen::stream_generate(*model, tokenizer, ids, options, on_response, cache);
  if (a.verbose) {
    std::printf("\n==========\n");
    if (text.empty()) {
      std::printf("No text generated for this prompt\n");
      return 0;
    }
    std::printf("Prompt: %lld tokens, %.3f tokens-per-sec\n", (long long)last.prompt_tokens,
                last.prompt_tps);
    std::printf("Generation: %lld tokens, %.3f tokens-per-sec\n", (long long)last.generation_tokens,
                last.generation_tps);
    std::printf("Peak memory: %.3f GB\n", last.peak_memory_gb);
    if (cached)
      std::printf("Prompt cache: %lld tokens loaded in %.3f s\n", (long long)cached_tokens,
                  cache_read_seconds + cache_load_seconds);
  } else {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::printf("\n");
  }
  return 0;
}

}  // namespace hearth::cli
