// Per-op timing of the CUDA backend for finding decode-step overheads without Nsight Systems
// (not on the GPU machine): with HEARTH_CUDA_PROFILE=1 every backend op records CUDA events
// around its launches and its host time; results are gathered at each stream sync and printed to
// stderr at exit as a table (calls, host µs per call, GPU µs per call, totals), plus the wall
// time between the first and the last sync. Off (the default), a scope costs one branch.
#pragma once

#include <cuda_runtime_api.h>

#include <chrono>

namespace hearth::ops::cuda {

bool op_profile_enabled();
// Reads the finished events of the ops queued so far; call right after a stream sync.
void op_profile_collect();

class OpProfileScope {
 public:
  OpProfileScope(const char* name, cudaStream_t stream) {
    if (op_profile_enabled()) begin(name, stream);
  }
  ~OpProfileScope() {
    if (name_) end();
  }
  OpProfileScope(const OpProfileScope&) = delete;
  OpProfileScope& operator=(const OpProfileScope&) = delete;

 private:
  void begin(const char* name, cudaStream_t stream);
  void end();
  const char* name_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t start_ = nullptr;
  std::chrono::steady_clock::time_point host_start_;
};

}  // namespace hearth::ops::cuda
