// cuda_bench's prefill parts: the two costs of an 8B prefill that sit furthest from their
// limits, timed alone so a kernel change can be judged without a whole model.
#pragma once

namespace hearth::bench {

// Prints, under MatmulPrecision::bf16 with bf16 activations:
//  - causal prefill attention of one 2048-token sequence at Llama-3.1-8B's shape (32 query
//    heads, 8 kv heads, head_dim 128, bf16 paged cache of 32-slot blocks): time per layer and
//    TFLOP/s (4 * head_dim flops per visible query-key pair and head), for each prefill kernel
//    the environment can select (HEARTH_CUDA_FLASH_ASYNC, HEARTH_CUDA_FLASH_ROWS);
//  - the 8B projections at 2048 rows: bf16 cuBLAS and the 4-/8-bit quantized matmul (group
//    size 64, bf16 scales), TFLOP/s.
void run_prefill_parts(int reps);

}  // namespace hearth::bench
