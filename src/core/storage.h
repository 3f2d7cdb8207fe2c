// A block of memory on one device that tensors view. Either owned (allocated through the device's
// allocator) or borrowed (an mmapped file region kept alive by an owner handle: zero-copy weights).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

#include "core/device.h"

namespace hearth {

// Allocation hooks for one device kind. The CPU one is built in; the CUDA backend registers its
// caching allocator so that the core never includes a CUDA header.
struct DeviceAllocator {
  void* (*allocate)(size_t bytes, int device_index) = nullptr;
  void (*deallocate)(void* ptr, size_t bytes, int device_index) = nullptr;
};
void register_device_allocator(DeviceKind kind, DeviceAllocator allocator);
bool has_device_allocator(DeviceKind kind);

// Host memory aligned for SIMD and cache lines.
inline constexpr size_t kHostAlignment = 64;
void* aligned_host_alloc(size_t bytes);
void aligned_host_free(void* ptr);

class Storage {
 public:
  // Fresh memory; contents undefined.
  static std::shared_ptr<Storage> allocate(size_t bytes, Device device);
  // Borrowed memory: `owner` keeps the underlying mapping alive; counted in memory stats as
  // `accounted_bytes` (pass 0 for memory that should not be reported).
  static std::shared_ptr<Storage> borrow(void* data, size_t bytes, Device device,
                                         std::shared_ptr<void> owner, size_t accounted_bytes = 0);

  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t size_bytes() const { return bytes_; }
  Device device() const { return device_; }
  bool is_borrowed() const { return owner_ != nullptr; }

 private:
  Storage() = default;
  void* data_ = nullptr;
  size_t bytes_ = 0;
  size_t accounted_ = 0;
  Device device_;
  std::shared_ptr<void> owner_;
};

}  // namespace hearth
