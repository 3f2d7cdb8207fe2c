// Typed errors raised at boundaries (files, configs, user input) and internal invariant checks.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace hearth {

enum class ErrorCode {
  invalid_argument,  // a bad value passed by the caller or the user (flag, request field)
  not_found,         // a file, tensor, key or token that should exist does not
  io,                // reading or writing failed at the OS level
  format,            // a file exists but its contents are malformed or truncated
  config,            // a model configuration is missing keys or holds impossible values
  unsupported,       // valid input that hearth does not (yet) handle
  out_of_memory,
  internal,  // a broken invariant inside hearth: a bug
};

const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, std::string message)
      : std::runtime_error(std::move(message)), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

template <typename... Args>
[[noreturn]] void fail(ErrorCode code, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(code, fmt::format(format, std::forward<Args>(args)...));
}

[[noreturn]] void fail_check(const char* file, int line, const char* condition,
                             const std::string& what);

}  // namespace hearth

// Internal invariant: failing means a bug in hearth, not bad user input.
#define HEARTH_CHECK(cond, ...)                                                                \
  do {                                                                                         \
    if (!(cond)) ::hearth::fail_check(__FILE__, __LINE__, #cond, fmt::format("" __VA_ARGS__)); \
  } while (0)
