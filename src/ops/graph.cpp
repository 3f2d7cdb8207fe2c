#include "ops/graph.h"

#if HEARTH_WITH_CUDA
#include "ops/cuda/cuda_backend.h"
#endif

namespace hearth::ops {

bool graphs_supported(Device device) {
#if HEARTH_WITH_CUDA
  if (device.is_cuda()) return cuda::graphs_supported();
#endif
  (void)device;
  return false;
}

std::unique_ptr<DeviceGraph> capture_graph(Device device, const std::function<void()>& record) {
#if HEARTH_WITH_CUDA
  if (device.is_cuda()) return cuda::capture_graph(record);
#endif
  (void)record;
  fail(ErrorCode::unsupported, "capture_graph: device {} cannot capture graphs", device.str());
}

std::unique_ptr<StagingBuffer> make_staging_buffer(Device device, size_t bytes) {
#if HEARTH_WITH_CUDA
  if (device.is_cuda()) return cuda::make_staging_buffer(bytes);
#endif
  (void)bytes;
  fail(ErrorCode::unsupported, "make_staging_buffer: device {} has no staging buffers",
       device.str());
}

}  // namespace hearth::ops
