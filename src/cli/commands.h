// hearth's subcommands. Each takes the arguments after its name and returns the exit status;
// errors propagate as hearth::Error / UsageError and are reported by main.
#pragma once

#include <string>
#include <vector>

namespace hearth::cli {

int run_generate(const std::vector<std::string>& args);
int run_benchmark(const std::vector<std::string>& args);
int run_tokenize(const std::vector<std::string>& args);
int run_chat_template(const std::vector<std::string>& args);
int run_convert(const std::vector<std::string>& args);
int run_cache_prompt(const std::vector<std::string>& args);
int run_chat(const std::vector<std::string>& args);

}  // namespace hearth::cli
