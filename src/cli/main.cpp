// The one `hearth` binary: dispatches to subcommands named after mlx-lm's.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"

namespace {

struct Command {
  const char* name;
  int (*run)(const std::vector<std::string>&);
  const char* help;
};

const Command kCommands[] = {
    {"generate", hearth::cli::run_generate, "generate text from a prompt"},
    {"benchmark", hearth::cli::run_benchmark, "measure prompt and generation speed"},
    {"tokenize", hearth::cli::run_tokenize, "encode text to token ids or decode ids to text"},
    {"chat-template", hearth::cli::run_chat_template,
     "print the prompt a conversation renders to with the model's chat template"},
    {"convert", hearth::cli::run_convert,
     "convert a model to MLX format: quantize (-q), dequantize (-d), change dtype"},
    {"cache_prompt", hearth::cli::run_cache_prompt,
     "prefill a prompt and save its KV cache for generate --prompt-cache-file"},
    {"chat", hearth::cli::run_chat,
     "chat with a model in the terminal (q quits, r resets, h help)"},
};

void print_usage(std::FILE* out) {
  std::fprintf(out, "usage: hearth <command> [options]\n\ncommands:\n");
  for (const auto& c : kCommands) std::fprintf(out, "  %-14s %s\n", c.name, c.help);
  std::fprintf(out, "\nRun 'hearth <command> --help' for a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help")) {
    print_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string name = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  for (const auto& c : kCommands) {
    if (name != c.name) continue;
    try {
      return c.run(args);
    } catch (const hearth::cli::UsageError& e) {
      std::fprintf(stderr, "usage: hearth %s [-h] [options]\nhearth %s: error: %s\n", c.name,
                   c.name, e.what());
      return 2;
    } catch (const hearth::Error& e) {
      std::fprintf(stderr, "hearth %s: error: %s\n", c.name, e.what());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "hearth %s: internal error: %s\n", c.name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "hearth: unknown command '%s'\n", name.c_str());
  print_usage(stderr);
  return 2;
}
