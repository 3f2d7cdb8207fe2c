// The CUDA backend's entry point, callable from host-only C++ (no CUDA headers here).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "ops/backend.h"
#include "ops/graph.h"

namespace hearth::ops::cuda {

// The CUDA backend when a usable GPU is present, else nullptr with the reason in *why.
Backend* cuda_backend_if_available(std::string* why);
// Waits for all queued device work (benchmarks, timing).
void synchronize();

// CUDA graphs (ops/graph.h; cuda_graph.cpp).
bool graphs_supported();
std::unique_ptr<DeviceGraph> capture_graph(const std::function<void()>& record);
std::unique_ptr<StagingBuffer> make_staging_buffer(size_t bytes);
std::unique_ptr<ReadbackBuffer> make_readback_buffer(size_t bytes);

}  // namespace hearth::ops::cuda
