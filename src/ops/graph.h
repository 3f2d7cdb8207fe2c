// Capture and replay of a fixed sequence of device ops (CUDA graphs, ARCHITECTURE.md decision 2),
// the pinned host buffer whose one upload per step refreshes the tables a replay reads, and the one
// a step's sampled ids come back through without waiting for the work queued after them.
// Backend-neutral, so that model code drives graphs without CUDA headers; the CPU captures nothing.
#pragma once

#include <array>
#include <cstddef>
#include <functional>
#include <memory>

#include "core/tensor.h"

namespace hearth::ops {

// Whether ops on `device` can be captured now: CUDA, HEARTH_CUDA_GRAPHS not "0", and not
// profiling (HEARTH_CUDA_PROFILE times every op with events on the host, which a replay skips).
bool graphs_supported(Device device);

class DeviceGraph {
 public:
  virtual ~DeviceGraph() = default;
  // Queues one replay of the captured ops on the device's stream (no sync).
  virtual void launch() = 0;
};

// Records the device work that `record` issues into a graph; nothing runs. Memory allocated while
// recording belongs to the graph until it is destroyed (its replays write it), even when the
// tensors that held it are freed earlier. Throws when `device` cannot capture, or when an op
// inside is not capturable (a sync, a host read of device memory); the stream is usable after.
std::unique_ptr<DeviceGraph> capture_graph(Device device, const std::function<void()>& record);

// Host memory that the device copies from asynchronously (pinned on CUDA).
class StagingBuffer {
 public:
  virtual ~StagingBuffer() = default;
  virtual size_t size() const = 0;
  // The buffer, once the device has read the previous upload from it (waits if needed).
  virtual void* acquire() = 0;
  // Queues a copy of the first `bytes` into dst (contiguous, on the buffer's device).
  virtual void upload(size_t bytes, Tensor& dst) = 0;
};
std::unique_ptr<StagingBuffer> make_staging_buffer(Device device, size_t bytes);

// Host memory the device copies into asynchronously (pinned on CUDA): pipelined decode reads step
// n's token while step n + 1 is already queued behind it (gen/generate.h).
class ReadbackBuffer {
 public:
  virtual ~ReadbackBuffer() = default;
  virtual size_t size() const = 0;
  // Queues a copy of src (contiguous, on the buffer's device, at most size() bytes) behind the
  // work already queued; a previous download's bytes are no longer valid.
  virtual void download(const Tensor& src) = 0;
  // The downloaded bytes, once the device has written them: waits for the work queued before the
  // download only, not for what was queued after it.
  virtual const void* wait() = 0;
};
// On the CPU the copy is done at download().
std::unique_ptr<ReadbackBuffer> make_readback_buffer(Device device, size_t bytes);

// Two readback buffers handed out in turn: pipelined decode has at most two steps in flight, so
// the buffer that step n + 2 takes was read with step n.
class ReadbackPair {
 public:
  ReadbackPair() = default;
  ReadbackPair(Device device, size_t bytes);
  ReadbackBuffer* next();

 private:
  std::array<std::unique_ptr<ReadbackBuffer>, 2> buffers_;
  int next_ = 0;
};

}  // namespace hearth::ops
