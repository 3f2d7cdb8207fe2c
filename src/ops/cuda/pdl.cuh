// Programmatic dependent launch (Hopper and later): a decode step is a chain of short kernels in
// which every kernel reads what the previous one wrote. Launched plainly, each kernel starts only
// after the previous one has drained, so the GPU idles between them (launch, the last wave's
// tail, the first loads' latency): at a few microseconds per kernel and ~10 kernels per layer,
// that is a large share of a step. With the launch attribute below the next kernel's blocks may
// be scheduled while the previous kernel still runs; they call pdl_wait() before touching
// anything the previous kernels write, so results are those of plain stream order, and the GEMVs
// use the time before the wait to load their first weights (which no kernel writes).
//
// Rules for a kernel launched with launch_kernel:
//  - every block calls pdl_wait() before its first access to memory that kernels write (reads
//    of weights may come first), and before any early return, so that a kernel never completes
//    before the one it follows;
//  - pdl_trigger() lets the next kernel launch early. Kernels call it right after pdl_wait(), so
//    at most one kernel waits ahead of the running one (triggering first thing let chains of
//    waiting kernels hold SM slots, and measured slower).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/launch.h"

namespace hearth::ops::cuda {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Launches kernel<<<grid, block, shared, stream>>>(args...) with programmatic stream
// serialization when pdl_launches() (the kernel must follow the rules above).
template <typename... Params, typename... Args>
cudaError_t launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared,
                          cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared;
  config.stream = stream;
  config.attrs = attr;
  config.numAttrs = pdl_launches() ? 1 : 0;
  return cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...);
}

}  // namespace hearth::ops::cuda
