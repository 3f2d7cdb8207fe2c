// Command-line parsing with Python argparse's conventions, so hearth's commands accept mlx-lm's
// flags as written: `--flag value`, `--flag=value`, short aliases, store-true flags, `nargs="+"`
// lists, and argparse-style errors ("argument --temp: invalid float value: 'x'", exit code 2).
#pragma once

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace hearth::cli {

// A usage error: printed with the usage line, exit status 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ArgParser {
 public:
  ArgParser(std::string prog, std::string description);

  void add_string(std::vector<std::string> names, std::string* target, std::string help);
  void add_optional_string(std::vector<std::string> names, std::optional<std::string>* target,
                           std::string help);
  void add_int(std::vector<std::string> names, int* target, std::string help);
  void add_optional_int(std::vector<std::string> names, std::optional<int>* target,
                        std::string help);
  void add_float(std::vector<std::string> names, float* target, std::string help);
  // store_true
  void add_flag(std::vector<std::string> names, bool* target, std::string help);
  // mlx-lm's str2bool: "false"/"f" (any case) is false, anything else true.
  void add_bool(std::vector<std::string> names, bool* target, std::string help);
  // nargs="+": one or more values up to the next option.
  void add_list(std::vector<std::string> names, std::vector<std::string>* target, std::string help);
  void add_choice(std::vector<std::string> names, std::string* target,
                  std::vector<std::string> choices, std::string help);

  // Parses args (without the program/command names). Returns false when help was requested (it
  // has been printed to stdout). Throws UsageError.
  bool parse(const std::vector<std::string>& args);
  std::string usage() const;
  std::string help() const;
  const std::string& prog() const { return prog_; }

 private:
  struct Option {
    std::vector<std::string> names;
    std::string help;
    std::string metavar;
    enum class Kind { value, flag, list } kind = Kind::value;
    std::function<void(const std::string&)> set;  // value / list item
    std::function<void()> set_flag;
    std::function<void()> clear_list;
  };
  Option& add(std::vector<std::string> names, std::string help);
  const Option* find(const std::string& name) const;

  std::string prog_, description_;
  std::vector<Option> options_;
};

}  // namespace hearth::cli
