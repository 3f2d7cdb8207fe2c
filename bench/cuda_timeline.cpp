// A kernel timeline of any CUDA program, for the decode-step accounting of docs/perf/cuda.md: the
// GPU machine has ncu but no nsys, and ncu replays kernels one at a time (caches and PDL overlap
// gone, small kernels read a few microseconds long), so it cannot say how busy the GPU is during
// a CUDA-graph decode step. CUPTI's concurrent-kernel activity records each kernel's start and end
// as it ran, graph nodes included, without serializing them.
//
// Loaded by the CUDA driver itself (no change to the program):
//   export CUDA_INJECTION64_PATH=build-cuda/bin/libcuda_timeline.so HEARTH_TIMELINE=run.csv
//   hearth benchmark --device cuda --model M -p 128 -g 32 -n 1
//   python3 bench/timeline_steps.py run.csv     # GPU-busy share and kernel time per decode step
// Output: one CSV row per kernel or copy, `start_ns,end_ns,stream,kind,name` (names mangled).
#include <cupti.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace {

FILE* g_out = nullptr;
std::mutex g_mutex;
constexpr size_t kBufferBytes = size_t(16) << 20;

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  std::lock_guard<std::mutex> lock(g_mutex);
  CUpti_Activity* record = nullptr;
  while (g_out && cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
    if (record->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) {
      const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
      std::fprintf(g_out, "%llu,%llu,%u,kernel,%s\n", static_cast<unsigned long long>(k->start),
                   static_cast<unsigned long long>(k->end), k->streamId, k->name);
    } else if (record->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
      const auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(record);
      std::fprintf(g_out, "%llu,%llu,%u,memcpy,kind%u_%llu_bytes\n",
                   static_cast<unsigned long long>(m->start),
                   static_cast<unsigned long long>(m->end), m->streamId, unsigned(m->copyKind),
                   static_cast<unsigned long long>(m->bytes));
    }
  }
  std::free(buffer);
}

void flush_at_exit() {
  cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_out) std::fclose(g_out);
  g_out = nullptr;
}

bool check(CUptiResult r, const char* what) {
  if (r == CUPTI_SUCCESS) return true;
  const char* msg = nullptr;
  cuptiGetResultString(r, &msg);
  std::fprintf(stderr, "cuda_timeline: %s failed: %s\n", what, msg ? msg : "unknown error");
  return false;
}

}  // namespace

// Called by the CUDA driver when CUDA_INJECTION64_PATH names this library.
extern "C" int InitializeInjection() {
  const char* path = std::getenv("HEARTH_TIMELINE");
  g_out = std::fopen(path ? path : "timeline.csv", "w");
  if (!g_out) {
    std::perror("cuda_timeline: cannot open the output file");
    return 0;
  }
  std::fprintf(g_out, "start_ns,end_ns,stream,kind,name\n");
  if (!check(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed),
             "cuptiActivityRegisterCallbacks") ||
      !check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL),
             "cuptiActivityEnable(CONCURRENT_KERNEL)") ||
      !check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY), "cuptiActivityEnable(MEMCPY)"))
    return 0;
  std::atexit(flush_at_exit);
  return 1;
}
