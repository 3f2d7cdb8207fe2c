// Helpers shared by cuda_bench's parts: timing and random device tensors.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>

#include "core/tensor.h"
#include "ops/copy.h"
#include "ops/cuda/cuda_backend.h"

namespace hearth::bench {

// Best seconds per call over `reps` timed batches of `inner` calls (after one warm-up batch),
// device synced. Both syncs: the tiled row launches run on the legacy default stream, the backend
// on its own.
inline double best_seconds(int reps, int inner, const std::function<void()>& fn) {
  auto sync = [] {
    ops::cuda::synchronize();
    cudaDeviceSynchronize();
  };
  for (int i = 0; i < inner; ++i) fn();
  sync();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < inner; ++i) fn();
    sync();
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / inner);
  }
  return best;
}

// A host f32 tensor of uniform values in [-0.05, 0.05) from a fixed LCG seeded with `seed`.
inline Tensor random_host(const Dims& shape, uint32_t seed) {
  Tensor host = Tensor::empty(shape, DType::f32);
  float* p = host.data<float>();
  uint32_t state = seed;
  for (int64_t i = 0; i < host.numel(); ++i) {
    state = state * 1664525u + 1013904223u;
    p[i] = (float(state >> 8) / float(1 << 24) - 0.5f) * 0.1f;
  }
  return host;
}

// random_host's values as a device tensor of `dtype`.
inline Tensor random_device(const Dims& shape, DType dtype, uint32_t seed = 12345) {
  return ops::to_device(ops::cast(random_host(shape, seed), dtype), Device::cuda(0));
}

}  // namespace hearth::bench
