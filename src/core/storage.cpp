#include "core/storage.h"

#include <cstdlib>
#include <new>

#include "core/error.h"
#include "core/memory_stats.h"

namespace hearth {
namespace {

DeviceAllocator& allocator_slot(DeviceKind kind) {
  static DeviceAllocator cpu, cuda;
  return kind == DeviceKind::cpu ? cpu : cuda;
}

}  // namespace

void register_device_allocator(DeviceKind kind, DeviceAllocator allocator) {
  allocator_slot(kind) = allocator;
}

bool has_device_allocator(DeviceKind kind) {
  return kind == DeviceKind::cpu || allocator_slot(kind).allocate != nullptr;
}

void* aligned_host_alloc(size_t bytes) {
  size_t rounded = (bytes + kHostAlignment - 1) / kHostAlignment * kHostAlignment;
  if (rounded == 0) rounded = kHostAlignment;
  void* p = std::aligned_alloc(kHostAlignment, rounded);
  if (!p) fail(ErrorCode::out_of_memory, "could not allocate {} bytes of host memory", bytes);
  return p;
}

void aligned_host_free(void* ptr) {
  std::free(ptr);
}

std::shared_ptr<Storage> Storage::allocate(size_t bytes, Device device) {
  // Allocate before building the Storage, so a failed allocation leaves nothing to release.
  void* data = nullptr;
  if (device.is_cpu()) {
    data = aligned_host_alloc(bytes);
  } else {
    DeviceAllocator& a = allocator_slot(device.kind);
    if (!a.allocate)
      fail(ErrorCode::unsupported,
           "no allocator for device {} (hearth built without CUDA, or its backend not started)",
           device.str());
    data = a.allocate(bytes, device.index);
  }
  std::shared_ptr<Storage> s(new Storage());
  s->data_ = data;
  s->bytes_ = bytes;
  s->device_ = device;
  s->accounted_ = bytes;
  memory::note_allocated(device.kind, bytes);
  return s;
}

std::shared_ptr<Storage> Storage::borrow(void* data, size_t bytes, Device device,
                                         std::shared_ptr<void> owner, size_t accounted_bytes) {
  std::shared_ptr<Storage> s(new Storage());
  s->data_ = data;
  s->bytes_ = bytes;
  s->device_ = device;
  s->owner_ = owner ? std::move(owner) : std::shared_ptr<void>(data, [](void*) {});
  s->accounted_ = accounted_bytes;
  if (accounted_bytes) memory::note_allocated(device.kind, accounted_bytes);
  return s;
}

Storage::~Storage() {
  if (accounted_) memory::note_freed(device_.kind, accounted_);
  if (owner_ || !data_) return;  // borrowed: the owner releases the memory
  if (device_.is_cpu()) {
    aligned_host_free(data_);
  } else {
    allocator_slot(device_.kind).deallocate(data_, bytes_, device_.index);
  }
}

}  // namespace hearth
