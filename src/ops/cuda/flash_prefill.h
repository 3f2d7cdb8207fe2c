// Tiled (FlashAttention-2 style) paged attention for prefill: query tiles that share each K/V tile
// loaded into shared memory, where the split-KV kernel (attention.cu) re-reads every key per query
// row. Chosen by plan_paged_attention for calls with many query rows per sequence.
#pragma once

#include "ops/cuda/launch.h"

namespace hearth::ops::cuda {

// Whether launch_flash_prefill takes this call: enough query rows per sequence to fill its tiles,
// a head_dim it instantiates, 16-byte aligned caches, enough blocks (or short enough contexts)
// for the GPU's sm_count, and HEARTH_CUDA_NO_FLASH_PREFILL unset.
bool use_flash_prefill(const AttentionArgs& args, int sm_count);
// Query rows per block for a bf16 cache on tensor cores (other kernels take 64): 128 rows serve
// each K/V tile to twice the rows (the kernel is bound by L2 reads of K/V: 8B shape, 2048 tokens,
// H100: 287 against 339 us a layer) but run one block an SM, so they are chosen when that still
// makes two blocks per SM. HEARTH_CUDA_FLASH_ROWS=64|128 overrides (A/B figures, tests).
int flash_prefill_rows(const AttentionArgs& args, int sm_count);
cudaError_t launch_flash_prefill(const AttentionArgs& args, int rows, cudaStream_t stream);

}  // namespace hearth::ops::cuda
