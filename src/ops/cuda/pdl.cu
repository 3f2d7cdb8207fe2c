// pdl_launches (pdl.cuh): programmatic dependent launches need compute capability 9.0.
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

}  // namespace hearth::ops::cuda
