#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace hearth::log {
namespace {

Level level_from_env() {
  const char* env = std::getenv("HEARTH_LOG");
  if (!env) return Level::warn;
  if (!std::strcmp(env, "debug")) return Level::debug;
  if (!std::strcmp(env, "info")) return Level::info;
  if (!std::strcmp(env, "warn")) return Level::warn;
  if (!std::strcmp(env, "error")) return Level::error;
  if (!std::strcmp(env, "off")) return Level::off;
  return Level::warn;
}

std::atomic<Level>& current() {
  static std::atomic<Level> l{level_from_env()};
  return l;
}

}  // namespace

Level level() {
  return current().load(std::memory_order_relaxed);
}
void set_level(Level l) {
  current().store(l);
}

void write(Level l, std::string_view message) {
  static std::mutex mutex;
  static const char* names[] = {"debug", "info", "warning", "error", ""};
  std::lock_guard<std::mutex> lock(mutex);
  std::fprintf(stderr, "[hearth %s] %.*s\n", names[int(l)], int(message.size()), message.data());
}

}  // namespace hearth::log
