#include "core/error.h"

namespace hearth {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_argument:
      return "invalid argument";
    case ErrorCode::not_found:
      return "not found";
    case ErrorCode::io:
      return "I/O error";
    case ErrorCode::format:
      return "format error";
    case ErrorCode::config:
      return "config error";
    case ErrorCode::unsupported:
      return "unsupported";
    case ErrorCode::out_of_memory:
      return "out of memory";
    case ErrorCode::internal:
      return "internal error";
  }
  return "error";
}

void fail_check(const char* file, int line, const char* condition, const std::string& what) {
  std::string message = fmt::format("internal check failed at {}:{}: {}", file, line, condition);
  if (!what.empty()) message += " (" + what + ")";
  throw Error(ErrorCode::internal, std::move(message));
}

}  // namespace hearth
