#include "ops/cuda/caching_allocator.h"

#include <cuda_runtime_api.h>

#include "core/error.h"
#include "ops/cuda/backend_internal.h"

namespace hearth::ops::cuda {

void* CachingAllocator::allocate(size_t bytes) {
  const size_t size = round(bytes);
  CaptureArena* arena = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (capture_arena_ && capture_thread_ == std::this_thread::get_id()) arena = capture_arena_;
    if (arena) {
      if (void* p = pop(arena->free, size)) return p;
    }
    if (void* p = pop(free_, size)) {
      if (arena) adopt(arena, p);
      return p;
    }
  }
  void* p = nullptr;
  cudaError_t e;
  if (arena) {
    // cudaMalloc queues no stream work, but the thread-local capture mode refuses it as
    // "potentially unsafe"; relaxed mode lets it through for this one call. Rare: the step
    // before a capture runs eagerly and leaves blocks of every size it needs in the cache.
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    cudaThreadExchangeStreamCaptureMode(&mode);
    e = cudaMalloc(&p, size);
    cudaThreadExchangeStreamCaptureMode(&mode);
  } else {
    e = cudaMalloc(&p, size);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear it, give the cache back to the driver, retry once
      release_cache();
      e = cudaMalloc(&p, size);
    }
  }
  if (e != cudaSuccess)
    fail(ErrorCode::out_of_memory, "CUDA: cannot allocate {} bytes of device memory ({})", bytes,
         cudaGetErrorString(e));
  if (arena) {
    std::lock_guard<std::mutex> lock(mutex_);
    adopt(arena, p);
  }
  return p;
}

void CachingAllocator::deallocate(void* p, size_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (capture_arena_ && capture_thread_ == std::this_thread::get_id() && !owner_.count(p)) {
    // Freed while recording: captured ops may have used it, so the graph keeps it too.
    adopt(capture_arena_, p);
  }
  if (!owner_.empty()) {
    auto it = owner_.find(p);
    if (it != owner_.end()) {
      it->second->free[round(bytes)].push_back(p);
      return;
    }
  }
  free_[round(bytes)].push_back(p);
}

void CachingAllocator::release_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  cudaStreamSynchronize(backend_stream());
  for (auto& [size, blocks] : free_)
    for (void* p : blocks) cudaFree(p);
  free_.clear();
}

CaptureArena* CachingAllocator::begin_arena() {
  std::lock_guard<std::mutex> lock(mutex_);
  HEARTH_CHECK(!capture_arena_, "CUDA: one graph capture at a time");
  capture_arena_ = new CaptureArena();
  capture_thread_ = std::this_thread::get_id();
  return capture_arena_;
}

void CachingAllocator::end_arena() {
  std::lock_guard<std::mutex> lock(mutex_);
  capture_arena_ = nullptr;
}

bool CachingAllocator::capturing() {
  std::lock_guard<std::mutex> lock(mutex_);
  return capture_arena_ && capture_thread_ == std::this_thread::get_id();
}

void CachingAllocator::release_arena(CaptureArena* arena) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (void* p : arena->owned) owner_.erase(p);
  for (auto& [size, blocks] : arena->free)
    for (void* p : blocks) free_[size].push_back(p);
  delete arena;
}

void* CachingAllocator::pop(FreeLists& lists, size_t size) {
  auto it = lists.find(size);
  if (it == lists.end() || it->second.empty()) return nullptr;
  void* p = it->second.back();
  it->second.pop_back();
  return p;
}

void CachingAllocator::adopt(CaptureArena* arena, void* p) {
  arena->owned.push_back(p);
  owner_[p] = arena;
}

size_t CachingAllocator::round(size_t bytes) {
  constexpr size_t kSmall = 512, kLarge = size_t(2) << 20;
  if (bytes == 0) bytes = 1;
  if (bytes < (size_t(1) << 20)) return (bytes + kSmall - 1) / kSmall * kSmall;
  return (bytes + kLarge - 1) / kLarge * kLarge;
}

}  // namespace hearth::ops::cuda
