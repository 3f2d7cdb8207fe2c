// CUDA graphs (ops/graph.h): capture on the backend's one stream, replay, the pinned staging
// buffers that refresh a replay's input tables with one copy, and the pinned readback buffers that
// bring a step's ids back behind an event instead of a stream sync. A decode step of a small model
// is ~225 launches of a few microseconds of GPU work each; replaying them as one graph removes the
// host time between them (docs/perf/cuda.md).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ops/cuda/backend_internal.h"
#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/op_profile.h"

namespace hearth::ops::cuda {
namespace {

class CudaGraph final : public DeviceGraph {
 public:
  CudaGraph(cudaGraphExec_t exec, CaptureArena* arena, EmbeddingCheck embedding)
      : exec_(exec), arena_(arena), embedding_(embedding) {}
  ~CudaGraph() override {
    // A replay may still be queued: let it finish before its memory goes back to the cache.
    // Errors are ignored (at exit the runtime may already be unloading).
    cudaStreamSynchronize(backend_stream());
    cudaGraphExecDestroy(exec_);
    cudaGetLastError();
    arena_release(arena_);
  }
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  void launch() override {
    check_cuda(cudaGraphLaunch(exec_, backend_stream()), "cudaGraphLaunch");
    // The replay ran the embedding kernel's id check: the next read reports a bad id.
    if (embedding_.pending) set_embedding_check(embedding_);
  }

 private:
  cudaGraphExec_t exec_;
  CaptureArena* arena_;
  EmbeddingCheck embedding_;
};

// Pinned host memory and an event marking the device's last copy to or from it: what the staging
// (upload) and readback (download) buffers share. `what` names the buffer in error messages.
class PinnedEventBuffer {
 public:
  PinnedEventBuffer(size_t bytes, const char* what) : bytes_(bytes), what_(what) {
    check_cuda(cudaHostAlloc(reinterpret_cast<void**>(&host_), std::max<size_t>(bytes, 1),
                             cudaHostAllocDefault),
               what_);
    cudaError_t e = cudaEventCreateWithFlags(&done_, cudaEventDisableTiming);
    if (e != cudaSuccess) {
      cudaFreeHost(host_);
      check_cuda(e, what_);
    }
  }
  ~PinnedEventBuffer() {
    if (queued_) cudaEventSynchronize(done_);
    cudaEventDestroy(done_);
    cudaFreeHost(host_);
    cudaGetLastError();
  }
  PinnedEventBuffer(const PinnedEventBuffer&) = delete;
  PinnedEventBuffer& operator=(const PinnedEventBuffer&) = delete;

  size_t size() const { return bytes_; }
  char* host() const { return host_; }
  // Waits for the last queued copy, if any.
  void wait() {
    if (queued_) check_cuda(cudaEventSynchronize(done_), what_);
    queued_ = false;
  }
  // Queues a copy of `bytes` between the host memory and `device` on the backend's stream.
  void copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
    if (bytes) check_cuda(cudaMemcpyAsync(dst, src, bytes, kind, backend_stream()), what_);
    check_cuda(cudaEventRecord(done_, backend_stream()), what_);
    queued_ = true;
  }

 private:
  size_t bytes_;
  const char* what_;
  char* host_ = nullptr;
  cudaEvent_t done_ = nullptr;
  bool queued_ = false;
};

class PinnedStaging final : public StagingBuffer {
 public:
  explicit PinnedStaging(size_t bytes) : buffer_(bytes, "staging buffer") {}

  size_t size() const override { return buffer_.size(); }
  void* acquire() override {
    // Usually long done: the previous step's upload ran before its kernels, and pipelined decode
    // queues at most one step behind the one running.
    buffer_.wait();
    return buffer_.host();
  }
  void upload(size_t bytes, Tensor& dst) override {
    HEARTH_CHECK(bytes <= size(), "staging upload of {} bytes from a buffer of {}", bytes, size());
    HEARTH_CHECK(dst.device().is_cuda() && dst.is_contiguous() && dst.nbytes() >= bytes,
                 "staging upload of {} bytes into {}", bytes, dst.describe());
    if (bytes) buffer_.copy(dst.raw_data(), buffer_.host(), bytes, cudaMemcpyHostToDevice);
  }

 private:
  PinnedEventBuffer buffer_;
};

class PinnedReadback final : public ReadbackBuffer {
 public:
  explicit PinnedReadback(size_t bytes) : buffer_(bytes, "readback buffer") {}

  size_t size() const override { return buffer_.size(); }
  void download(const Tensor& src) override {
    HEARTH_CHECK(src.device().is_cuda() && src.is_contiguous() && src.nbytes() <= size(),
                 "readback of {} into a pinned buffer of {} bytes", src.describe(), size());
    HEARTH_CHECK(!capturing(), "a readback cannot be recorded into a graph");
    buffer_.wait();  // a download still in flight writes the same bytes: let it land first
    buffer_.copy(buffer_.host(), src.raw_data(), src.nbytes(), cudaMemcpyDeviceToHost);
  }
  const void* wait() override {
    buffer_.wait();
    return buffer_.host();
  }

 private:
  PinnedEventBuffer buffer_;
};

}  // namespace

bool graphs_supported() {
  static const bool enabled = [] {
    const char* v = std::getenv("HEARTH_CUDA_GRAPHS");
    return !(v && std::string(v) == "0");
  }();
  std::string why;
  return enabled && !op_profile_enabled() && cuda_backend_if_available(&why) != nullptr;
}

std::unique_ptr<DeviceGraph> capture_graph(const std::function<void()>& record) {
  std::string why;
  if (!cuda_backend_if_available(&why))
    fail(ErrorCode::unsupported, "capture_graph on cuda: {}", why);
  prepare_blas_for_capture();
  const cudaStream_t stream = backend_stream();
  // Host-side state that ops change while recording describes work that has not run: kept
  // aside and restored after capture.
  const EmbeddingCheck before = embedding_check();
  set_embedding_check({false, before.vocab});
  CaptureArena* arena = arena_begin();
  auto abandon = [&](cudaGraph_t graph) {
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    arena_end();
    arena_release(arena);
    set_embedding_check(before);
  };
  cudaError_t e = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);
  if (e != cudaSuccess) {
    abandon(nullptr);
    check_cuda(e, "cudaStreamBeginCapture");
  }
  cudaGraph_t graph = nullptr;
  try {
    record();
  } catch (...) {
    cudaStreamEndCapture(stream, &graph);
    abandon(graph);
    throw;
  }
  e = cudaStreamEndCapture(stream, &graph);
  const EmbeddingCheck captured = embedding_check();
  if (e != cudaSuccess) {
    abandon(graph);
    check_cuda(e, "cudaStreamEndCapture");
  }
  arena_end();
  set_embedding_check(before);
  cudaGraphExec_t exec = nullptr;
  e = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (e != cudaSuccess) {
    cudaGetLastError();
    arena_release(arena);
    check_cuda(e, "cudaGraphInstantiate");
  }
  return std::make_unique<CudaGraph>(exec, arena, captured);
}

std::unique_ptr<StagingBuffer> make_staging_buffer(size_t bytes) {
  std::string why;
  if (!cuda_backend_if_available(&why))
    fail(ErrorCode::unsupported, "make_staging_buffer on cuda: {}", why);
  return std::make_unique<PinnedStaging>(bytes);
}

std::unique_ptr<ReadbackBuffer> make_readback_buffer(size_t bytes) {
  std::string why;
  if (!cuda_backend_if_available(&why))
    fail(ErrorCode::unsupported, "make_readback_buffer on cuda: {}", why);
  return std::make_unique<PinnedReadback>(bytes);
}

}  // namespace hearth::ops::cuda
