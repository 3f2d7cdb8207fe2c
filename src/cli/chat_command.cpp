// `hearth chat`: the REPL of mlx_lm.chat. The conversation stays in one KV cache between turns,
// so each turn prefills only its new text. Works through a pipe and in a terminal; Ctrl-C
// (SIGINT) stops a reply and returns to the prompt, Ctrl-C at the prompt or end of input ends
// the session.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/timer.h"
#include "gen/generate.h"

namespace hearth::cli {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;

void on_sigint(int) {
  g_interrupted = 1;
}

// Installs the SIGINT handler without SA_RESTART, so that a read at the prompt returns EINTR,
// and puts the previous disposition back on exit.
class SigintGuard {
 public:
  SigintGuard() {
    struct sigaction action {};
    action.sa_handler = on_sigint;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;
    sigaction(SIGINT, &action, &previous_);
  }
  ~SigintGuard() { sigaction(SIGINT, &previous_, nullptr); }
  SigintGuard(const SigintGuard&) = delete;
  SigintGuard& operator=(const SigintGuard&) = delete;

 private:
  struct sigaction previous_ {};
};

enum class Input { line, end, interrupted };

// One line from standard input with read(2): stdio would retry after the signal instead of
// letting Ctrl-C end the session. A last line without a newline still counts. SIGINT is blocked
// except inside ppoll, which unblocks it atomically while waiting: a Ctrl-C that lands between
// the check of the flag and the wait would otherwise be lost and leave the read blocked.
Input read_line(std::string& line) {
  line.clear();
  sigset_t sigint, original;
  sigemptyset(&sigint);
  sigaddset(&sigint, SIGINT);
  for (;;) {
    sigprocmask(SIG_BLOCK, &sigint, &original);
    if (g_interrupted) {
      sigprocmask(SIG_SETMASK, &original, nullptr);
      return Input::interrupted;
    }
    struct pollfd wait_for_input {
      STDIN_FILENO, POLLIN, 0
    };
    const int ready = ppoll(&wait_for_input, 1, nullptr, &original);
    sigprocmask(SIG_SETMASK, &original, nullptr);
    if (ready < 0) {
      if (errno == EINTR) continue;  // the flag is checked at the top
      break;
    }
    char c = 0;
    ssize_t n = ::read(STDIN_FILENO, &c, 1);
    if (n == 1) {
      if (c == '\n') break;
      line += c;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (line.empty()) return Input::end;
    break;
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return Input::line;
}

struct ChatArgs {
  std::optional<std::string> model;
  float temp = 0.0f, top_p = 1.0f;
  float xtc_probability = 0.0f, xtc_threshold = 0.0f;
  int seed = 0;
  std::optional<int> max_kv_size;
  int max_tokens = 256;
  std::optional<std::string> system_prompt;
  bool verbose = false;
  std::string device;  // empty: the GPU when there is one
  std::string matmul_precision = "bf16";
};

// --system-prompt names a file when it looks like a path or an existing file (mlx_lm.chat).
std::string system_prompt_text(const std::string& flag) {
  std::string path = flag;
  const bool looks_like_path = flag.rfind("./", 0) == 0 || flag.rfind("../", 0) == 0 ||
                               flag.rfind("/", 0) == 0 || flag.rfind("~", 0) == 0;
  if (flag.rfind("~", 0) == 0) {
    const char* home = std::getenv("HOME");
    if (home) path = std::string(home) + flag.substr(1);
  }
  std::error_code ec;
  if (!looks_like_path && !std::filesystem::is_regular_file(path, ec)) return flag;
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorCode::not_found, "--system-prompt: cannot read the file {}", path);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  // Python's str.strip(): whitespace off both ends.
  auto is_space = [](unsigned char c) { return std::isspace(c) != 0; };
  while (!text.empty() && is_space(text.back())) text.pop_back();
  size_t begin = 0;
  while (begin < text.size() && is_space(text[begin])) ++begin;
  std::printf("System prompt loaded from %s\n", flag.c_str());
  return text.substr(begin);
}

void print_help() {
  std::printf("The command list:\n");
  std::printf("- 'q' to exit\n");
  std::printf("- 'r' to reset the chat\n");
  std::printf("- 'h' to display these commands\n");
  std::fflush(stdout);
}

}  // namespace

int run_chat(const std::vector<std::string>& argv) {
  ChatArgs a;
  ArgParser p("hearth chat", "Chat with an LLM (mlx_lm.chat).");
  p.add_optional_string({"--model"}, &a.model,
                        "The path to the local model directory or Hugging Face repo (in the local "
                        "cache). Default: the bundled model.");
  p.add_float({"--temp"}, &a.temp, "Sampling temperature");
  p.add_float({"--top-p"}, &a.top_p, "Sampling top-p");
  p.add_float({"--xtc-probability"}, &a.xtc_probability,
              "Probability of XTC sampling to happen each next token");
  p.add_float({"--xtc-threshold"}, &a.xtc_threshold,
              "Thresold the probs of each next token candidate to be sampled by XTC");
  p.add_int({"--seed"}, &a.seed, "PRNG seed");
  p.add_optional_int({"--max-kv-size"}, &a.max_kv_size, "Set the maximum key-value cache size");
  p.add_int({"--max-tokens", "-m"}, &a.max_tokens, "Maximum number of tokens to generate");
  p.add_optional_string({"--system-prompt"}, &a.system_prompt,
                        "System prompt (a text or a file name) to be used for the chat template");
  p.add_bool({"--verbose"}, &a.verbose,
             "After each reply, print prompt tokens prefilled, speeds and the cache size "
             "('True'/'T'; hearth only)");
  p.add_string({"--device"}, &a.device,
               "cpu or cuda[:N] (default: cuda when a GPU is present, else cpu)");
  add_matmul_precision_flag(p, &a.matmul_precision);
  if (!p.parse(argv)) return 0;
  if (a.max_tokens < -1)
    throw UsageError("argument --max-tokens: must be >= 0 (or -1 for no limit)");

  gen::GenerationOptions options;
  set_kv_cache_flags(a.max_kv_size, std::nullopt, 64, 5000, options);
  options.max_tokens = a.max_tokens;
  options.sampling.temp = a.temp;
  options.sampling.top_p = a.top_p;
  options.sampling.xtc_probability = a.xtc_probability;
  options.sampling.xtc_threshold = a.xtc_threshold;

  Device device = device_from_flag(a.device);
  std::filesystem::path dir = model_dir_from_flag(a.model);
  text::Tokenizer tokenizer = text::Tokenizer::from_dir(dir);
  if (!tokenizer.has_chat_template())
    fail(ErrorCode::unsupported, "{}: the tokenizer has no chat template, which chat needs",
         dir.string());
  std::unique_ptr<model::Model> model =
      model::load_model(dir, load_options(device, a.matmul_precision));
  const std::vector<int32_t> eos = gen::eos_token_ids(*model, tokenizer);
  options.sampling.xtc_special_tokens = tokenizer.encode("\n", false);
  for (int32_t id : eos) options.sampling.xtc_special_tokens.push_back(id);

  std::optional<std::string> system_prompt;
  if (a.system_prompt) system_prompt = system_prompt_text(*a.system_prompt);

  // The pool reserves address space only (CPU); a conversation may fill the model's context.
  const int64_t capacity =
      std::max<int64_t>(model->config().max_position_embeddings, 8192) + std::max(a.max_tokens, 0);
  auto new_cache = [&] { return make_kv_cache(*model, options, capacity); };

  SigintGuard sigint;
  std::printf("[INFO] Starting chat session with %s.\n",
              (a.model ? *a.model : dir.string()).c_str());
  print_help();
  std::shared_ptr<kv::KvCache> cache = new_cache();
  // Tokens of the conversation not yet in the cache: the reply's last token (hearth feeds a
  // sampled token on the next step, mlx-lm one step ahead; both caches end up the same).
  std::vector<int32_t> pending;
  bool first_message = true;
  uint64_t turn = 0;
  std::string query;
  for (;;) {
    g_interrupted = 0;  // before the prompt: a Ctrl-C typed once it shows must end the session
    std::printf(">> ");
    std::fflush(stdout);
    Input in = read_line(query);
    if (in != Input::line) {
      std::printf("\n");
      break;
    }
    if (query.empty()) continue;
    if (query == "q") break;
    if (query == "r") {
      cache = new_cache();
      pending.clear();
      first_message = true;
      continue;
    }
    if (query == "h") {
      print_help();
      continue;
    }
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    if (system_prompt && first_message)
      messages.push_back({{"role", "system"}, {"content", *system_prompt}});
    first_message = false;
    messages.push_back({{"role", "user"}, {"content", query}});
    text::ChatOptions chat;
    chat.add_generation_prompt = true;
    std::vector<int32_t> prompt = pending;
    for (int32_t id : tokenizer.encode(tokenizer.apply_chat_template(messages, chat), false))
      prompt.push_back(id);

    // One seed per turn: the sampler's stream continues from turn to turn like mlx-lm's global
    // one, reproducibly for a given --seed.
    options.seed = uint64_t(int64_t(a.seed)) + turn++;
    const int64_t prefill = int64_t(prompt.size());
    gen::TokenGenerator generator(*model, prompt, options, cache);
    std::unique_ptr<text::StreamingDetokenizer> detokenizer = tokenizer.make_detokenizer();
    std::string finish = "length";
    int64_t produced = 0;
    int32_t last = -1;
    double prompt_seconds = 0;
    Stopwatch clock;
    try {
      while (auto step = generator.next()) {
        if (produced == 0) {
          prompt_seconds = clock.seconds();
          clock.restart();
        }
        ++produced;
        last = step->token;
        if (std::binary_search(eos.begin(), eos.end(), step->token)) {
          finish = "stop";
          break;
        }
        detokenizer->add_token(step->token);
        std::string piece = detokenizer->take_text();
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
        if (g_interrupted) {
          finish = "interrupted";
          break;
        }
      }
    } catch (const Error& e) {
      if (e.code() != ErrorCode::out_of_memory) throw;
      std::printf("\n");
      std::fprintf(stderr, "[ERROR] %s: the conversation no longer fits; it was reset.\n",
                   e.what());
      cache = new_cache();
      pending.clear();
      first_message = true;
      continue;
    }
    cache = generator.shared_cache();  // a replacement once the cache was quantized
    std::string tail = detokenizer->finalize();
    std::fwrite(tail.data(), 1, tail.size(), stdout);
    std::printf("\n");
    if (produced > 0)
      pending = {last};
    else
      pending = prompt;  // --max-tokens 0: nothing ran
    if (a.verbose) {
      const double gen_seconds = std::max(clock.seconds(), 1e-9);
      std::printf(
          "[prefill: %lld tokens, %.3f tokens-per-sec | generation: %lld tokens, %.3f "
          "tokens-per-sec | cache: %lld tokens | finish: %s]\n",
          (long long)prefill, double(prefill) / std::max(prompt_seconds, 1e-9), (long long)produced,
          double(produced) / gen_seconds, (long long)(cache->size() + int64_t(pending.size())),
          finish.c_str());
    }
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace hearth::cli
