// The CUDA backend's caching device allocator (cuda_backend.cpp owns the one instance).
//
// Freed blocks go to per-size free lists and are reused (cudaMalloc/cudaFree synchronize the
// device and must stay off the hot path). Sizes round up to 512 B below 1 MiB and to 2 MiB above.
// Only one stream issues work, so a block freed by the host can be handed out again at once: its
// next users queue behind its last ones.
//
// While a thread records a CUDA graph, its allocations come from the graph's CaptureArena
// (backend_internal.h): a replay writes those addresses long after the tensors that held them
// during capture are gone, so they must not reach the shared free lists while the graph lives.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace hearth::ops::cuda {

struct CaptureArena {
  std::map<size_t, std::vector<void*>> free;
  std::vector<void*> owned;
};

class CachingAllocator {
 public:
  // Throws ErrorCode::out_of_memory when the driver has no memory left even after the cache is
  // given back.
  void* allocate(size_t bytes);
  void deallocate(void* p, size_t bytes);
  // Waits for the stream, then gives every cached free block back to the driver.
  void release_cache();

  CaptureArena* begin_arena();
  void end_arena();
  // Whether the calling thread is recording into an arena.
  bool capturing();
  void release_arena(CaptureArena* arena);

 private:
  using FreeLists = std::map<size_t, std::vector<void*>>;
  static void* pop(FreeLists& lists, size_t size);
  void adopt(CaptureArena* arena, void* p);
  static size_t round(size_t bytes);

  std::mutex mutex_;
  FreeLists free_;
  std::unordered_map<void*, CaptureArena*> owner_;  // blocks owned by a live graph
  CaptureArena* capture_arena_ = nullptr;
  std::thread::id capture_thread_;
};

}  // namespace hearth::ops::cuda
