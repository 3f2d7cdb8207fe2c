// The CUDA backend's entry point, callable from host-only C++ (no CUDA headers here).
#pragma once

#include <string>

#include "ops/backend.h"

namespace hearth::ops::cuda {

// The CUDA backend when a usable GPU is present, else nullptr with the reason in *why.
Backend* cuda_backend_if_available(std::string* why);
// Waits for all queued device work (benchmarks, timing).
void synchronize();

}  // namespace hearth::ops::cuda
