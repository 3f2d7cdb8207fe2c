// What cuda_backend.cpp shares with the graph capture in cuda_graph.cpp and with
// quantized_gemv.cpp: the stream, error checks, the allocator's capture arenas, the deferred
// embedding-id check, and the quantized GEMV's kernel choice.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/tensor.h"
#include "ops/cuda/quantized_launch.h"
#include "ops/quantized.h"

namespace hearth::ops::cuda {

cudaStream_t backend_stream();
// Throws a hearth Error naming `what` (out_of_memory for cudaErrorMemoryAllocation).
void check_cuda(cudaError_t error, const char* what);

// A graph's private share of the caching allocator. Between arena_begin and arena_end, every
// allocation of the calling thread is served from (and stays owned by) the arena, and every block
// the thread frees joins it (captured ops may have used it): such blocks are reused only by later
// allocations of the same capture (the captured ops run in stream order, as eager ones do), and
// no block is handed to anyone else until arena_release, which the graph calls when destroyed.
struct CaptureArena;
CaptureArena* arena_begin();
void arena_end();
// Returns the arena's free blocks to the cache; blocks still held by tensors go back to the cache
// when they are freed.
void arena_release(CaptureArena* arena);
// Whether the calling thread is recording a graph (ops must not sync or read device memory).
bool capturing();

// The embedding kernel records a bad id on the device; the next device -> host read reports it
// (cuda_backend.cpp, sync_and_check_ids). A replay that runs the kernel sets it pending again.
struct EmbeddingCheck {
  bool pending = false;
  int64_t vocab = 0;
  const char* op =
      "embedding";  // the gather whose ids are checked (embedding / quantized_embedding)
};
EmbeddingCheck embedding_check();
void set_embedding_check(const EmbeddingCheck& check);

// Gives an existing cuBLAS handle a fixed workspace, so that a captured GEMM does not allocate.
void prepare_blas_for_capture();

// The launchers' element type of a tensor dtype.
Elem elem_of(DType dtype);

// Quantized weights and products as the launchers of quantized_launch.h take them
// (quantized_gemv.cpp).
QuantMatrix quant_matrix(const QuantizedWeight& w);
QuantGemvOut quant_gemv_out(const QuantizedWeight& w, const Tensor* bias, Tensor* out);
// Runs the products on the tensor-core 4-bit GEMV of MatmulPrecision::bf16 (quantized_mma.cu, up
// to 32 rows of x, 8 per launch) when the precision, the widths and the shapes allow it; false
// leaves them to the caller.
bool try_quantized_gemv_bf16(const Tensor& x, QuantGemvGroups groups, bool silu_mul);

}  // namespace hearth::ops::cuda
