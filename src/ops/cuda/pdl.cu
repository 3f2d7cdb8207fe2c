// pdl_launches (pdl.cuh): programmatic dependent launches need compute capability 9.0; and
// allow_shared_memory (launch.h).
#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>

#include "ops/cuda/launch.h"

namespace hearth::ops::cuda {

bool pdl_launches() {
  static const bool enabled = [] {
    const char* env = std::getenv("HEARTH_CUDA_PDL");
    if (env && std::strcmp(env, "0") == 0) return false;
    int device = 0, major = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    return major >= 9;
  }();
  return enabled;
}

cudaError_t allow_shared_memory(const void* kernel, size_t bytes, std::atomic<uint64_t>& asked) {
  if (bytes <= (48 << 10)) return cudaSuccess;
  int device = 0;
  if (cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return e;
  const uint64_t bit = device < 64 ? uint64_t(1) << device : 0;
  if (asked.load(std::memory_order_relaxed) & bit) return cudaSuccess;
  if (cudaError_t e =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
      e != cudaSuccess)
    return e;
  asked.fetch_or(bit, std::memory_order_relaxed);
  return cudaSuccess;
}

int sm_count() {
  static const int count = [] {
    int device = 0, n = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
        n <= 0) {
      cudaGetLastError();
      n = 132;
    }
    return n;
  }();
  return count;
}

}  // namespace hearth::ops::cuda
