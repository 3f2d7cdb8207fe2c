// `hearth generate`: mlx_lm.generate's flags, defaults and output.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <optional>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "gen/generate.h"

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
  std::string device = "cpu";
};

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
  p.add_string({"--device"}, &a.device, "cpu or cuda[:N]");
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

  Device device = device_from_flag(a.device);
  std::filesystem::path dir = model_dir_from_flag(a.model);
  text::Tokenizer tokenizer = text::Tokenizer::from_dir(dir);
  std::unique_ptr<model::Model> model = model::load_model(dir, {device});

  gen::GenerationOptions options;
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
  gen::stream_generate(*model, tokenizer, ids, options, [&](const gen::GenerationResponse& r) {
    if (a.verbose) {
      std::fwrite(r.text.data(), 1, r.text.size(), stdout);
      std::fflush(stdout);
    }
    text += r.text;
    last = r;
    return true;
  });
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
  } else {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::printf("\n");
  }
  return 0;
}

}  // namespace hearth::cli
