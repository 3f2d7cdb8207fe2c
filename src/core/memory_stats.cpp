#include "core/memory_stats.h"

#include <atomic>

namespace hearth::memory {
namespace {

struct Counters {
  std::atomic<size_t> current{0};
  std::atomic<size_t> peak{0};
};

Counters& counters(DeviceKind kind) {
  static Counters cpu, cuda;
  return kind == DeviceKind::cpu ? cpu : cuda;
}

}  // namespace

void note_allocated(DeviceKind kind, size_t bytes) {
  Counters& c = counters(kind);
  size_t now = c.current.fetch_add(bytes) + bytes;
  size_t peak = c.peak.load();
  while (now > peak && !c.peak.compare_exchange_weak(peak, now)) {
  }
}

void note_freed(DeviceKind kind, size_t bytes) {
  counters(kind).current.fetch_sub(bytes);
}
size_t current_bytes(DeviceKind kind) {
  return counters(kind).current.load();
}
size_t peak_bytes(DeviceKind kind) {
  return counters(kind).peak.load();
}
void reset_peak(DeviceKind kind) {
  counters(kind).peak.store(counters(kind).current.load());
}

}  // namespace hearth::memory
