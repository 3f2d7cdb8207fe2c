#include "ops/graph.h"

#include <cstring>
#include <vector>

#if HEARTH_WITH_CUDA
#include "ops/cuda/cuda_backend.h"
#endif

namespace hearth::ops {
namespace {

class HostReadback final : public ReadbackBuffer {
 public:
  explicit HostReadback(size_t bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  void download(const Tensor& src) override {
    HEARTH_CHECK(src.device().is_cpu() && src.is_contiguous() && src.nbytes() <= bytes_.size(),
                 "readback of {} into a host buffer of {} bytes", src.describe(), bytes_.size());
    if (src.nbytes()) std::memcpy(bytes_.data(), src.raw_data(), src.nbytes());
  }
  const void* wait() override { return bytes_.data(); }

 private:
  std::vector<unsigned char> bytes_;
};

}  // namespace

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

std::unique_ptr<ReadbackBuffer> make_readback_buffer(Device device, size_t bytes) {
#if HEARTH_WITH_CUDA
  if (device.is_cuda()) return cuda::make_readback_buffer(bytes);
#endif
  if (device.is_cpu()) return std::make_unique<HostReadback>(bytes);
  fail(ErrorCode::unsupported, "make_readback_buffer: device {} has no readback buffers",
       device.str());
}

ReadbackPair::ReadbackPair(Device device, size_t bytes) {
  for (auto& b : buffers_) b = make_readback_buffer(device, bytes);
}

ReadbackBuffer* ReadbackPair::next() {
  ReadbackBuffer* b = buffers_[size_t(next_)].get();
  next_ ^= 1;
  return b;
}

}  // namespace hearth::ops
