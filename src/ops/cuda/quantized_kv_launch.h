// Launchers of the quantized KV cache kernels (quantized_attention.cu): plain C++ declarations
// like launch.h, so the backend can call them without CUDA device code.
#pragma once

#include "ops/cuda/launch.h"

namespace hearth::ops::cuda {

// One layer's quantized planes: packed u32 [blocks, kv_heads, block_size, head_dim * bits / 32],
// scales/biases [blocks, kv_heads, block_size, head_dim / group_size] of `scale_elem`.
struct QuantizedKvArgs {
  uint32_t* k_packed;
  void* k_scales;
  void* k_biases;
  uint32_t* v_packed;
  void* v_scales;
  void* v_biases;
  Elem scale_elem;
  int bits, group_size, block_size;
  int64_t kv_heads, head_dim;
};

// k/v: [tokens, kv_heads, head_dim] rows of kv_elem. Each head vector is rounded to scale_elem and
// quantized with MLX's Metal/CUDA algorithm (bit-identical to ops::affine_quantize, gpu variant).
cudaError_t launch_write_kv_quantized(const void* k, Rows kr, const void* v, Rows vr, Elem kv_elem,
                                      const int32_t* slots, int64_t tokens,
                                      const QuantizedKvArgs& cache, cudaStream_t stream);

// How launch_paged_attention_quantized divides the work: AttentionPlan's head tiles and key splits
// (partials and scratch as the dense kernel's), and `rows` consecutive query rows per block so a
// prefill chunk decodes each K/V row once for rows * tile query vectors.
struct QuantizedAttentionPlan : AttentionPlan {
  int rows = 1;
};
QuantizedAttentionPlan plan_paged_attention_quantized(const AttentionArgs& a,
                                                      const QuantizedKvArgs& cache, int sm_count);

// Same q/out/meta fields as AttentionArgs (its cache fields are unused; max_slots and the
// positions are used). `scratch` holds plan.scratch_floats floats (null when 0).
cudaError_t launch_paged_attention_quantized(const AttentionArgs& a, const QuantizedKvArgs& cache,
                                             const QuantizedAttentionPlan& plan, float* scratch,
                                             cudaStream_t stream);

}  // namespace hearth::ops::cuda
