// The backend registry: the one piece of mutable global state in the op layer. The CPU backend is
// created lazily on first lookup (no static-initialization order to depend on); the CUDA backend
// registers itself through register_backend when it initializes.
#include "ops/backend.h"

#include <array>
#include <atomic>

#include "ops/cpu/cpu_backend.h"
#if HEARTH_WITH_CUDA
#include "ops/cuda/cuda_backend.h"
#endif

namespace hearth::ops {
namespace {

constexpr int kNumDeviceKinds = 2;  // DeviceKind::cpu, DeviceKind::cuda

std::array<std::atomic<Backend*>, kNumDeviceKinds>& registry() {
  static std::array<std::atomic<Backend*>, kNumDeviceKinds> slots{};
  return slots;
}

int slot_index(DeviceKind kind) {
  int i = int(kind);
  HEARTH_CHECK(i >= 0 && i < kNumDeviceKinds, "unknown device kind {}", i);
  return i;
}

}  // namespace

Backend& backend_for(Device device) {
  std::atomic<Backend*>& slot = registry()[slot_index(device.kind)];
  if (Backend* b = slot.load(std::memory_order_acquire)) return *b;
  if (device.is_cpu()) {
    Backend* expected = nullptr;
    slot.compare_exchange_strong(expected, &cpu::cpu_backend(), std::memory_order_acq_rel);
    return *slot.load(std::memory_order_acquire);
  }
#if HEARTH_WITH_CUDA
  if (device.is_cuda()) {
    std::string why;
    if (Backend* cuda = cuda::cuda_backend_if_available(&why)) {
      if (device.index != 0)
        fail(ErrorCode::unsupported, "device {}: only cuda:0 is supported so far", device.str());
      Backend* expected = nullptr;
      slot.compare_exchange_strong(expected, cuda, std::memory_order_acq_rel);
      return *slot.load(std::memory_order_acquire);
    }
    fail(ErrorCode::unsupported, "no backend for device {}: {}", device.str(), why);
  }
#endif
  fail(ErrorCode::unsupported,
       "no backend for device {}: hearth was built without CUDA, or no GPU was found",
       device.str());
}

void register_backend(DeviceKind kind, Backend* backend) {
  registry()[slot_index(kind)].store(backend, std::memory_order_release);
}

}  // namespace hearth::ops
