// Attention over a paged KV cache stored with MLX affine quantization (mlx-lm's QuantizedKVCache),
// and the quantize-on-write of new keys/values into it.
//
// Each token's head vector (head_dim values of one kv head) is quantized on its own, exactly like
// `mx.quantize` on mlx-lm's [B, n_kv_heads, T, head_dim] keys: groups of `group_size` values along
// head_dim, one scale and one bias per group (ops/quantized.h, MLX's Metal/CUDA variant, which is
// what MLX on Apple silicon runs for the cache). Planes of one layer, for keys and for values:
//   packed: u32 [num_blocks, n_kv_heads, block_size, head_dim * bits / 32]
//   scales: [num_blocks, n_kv_heads, block_size, head_dim / group_size] (f32, f16 or bf16)
//   biases: same shape and dtype as scales
// Token t of a sequence lives in block block_table[t / block_size] at row t % block_size, as in the
// dense cache (ops/attention.h).
#pragma once

#include "core/tensor.h"
#include "ops/attention.h"

namespace hearth::ops {

// Bit widths and group sizes the quantized KV kernels support (all of MLX's affine ones).
inline constexpr int kKvQuantBits[] = {2, 3, 4, 5, 6, 8};
inline constexpr int kKvQuantGroupSizes[] = {32, 64, 128};

// One layer's quantized key and value planes (views into a kv::BlockPool, or test tensors).
struct QuantizedKvPlanes {
  Tensor k_packed, k_scales, k_biases;
  Tensor v_packed, v_scales, v_biases;
  int bits = 8;
  int group_size = 64;

  int64_t num_blocks() const { return k_packed.dim(0); }
  int64_t kv_heads() const { return k_packed.dim(1); }
  int64_t block_size() const { return k_packed.dim(2); }
  int64_t head_dim() const { return k_packed.dim(3) * 32 / bits; }
  Device device() const { return k_packed.device(); }
  // Throws invalid_argument naming `op` and the plane when shapes, dtypes, devices, bits or the
  // group size do not fit together.
  void validate(const char* op) const;
};

// Throws invalid_argument naming `what` unless bits/group_size are supported and group_size
// divides head_dim.
void check_kv_quantization(const char* what, int bits, int group_size, int64_t head_dim);

// k, v: [T, n_kv_heads, head_dim] (f32/f16/bf16, rows contiguous); slots: i32 [T] as in write_kv.
// Each token's head vectors are first rounded to the cache's scale dtype (the dtype a dense cache
// would have stored them in) and then quantized bit-identically to MLX's GPU `mx.quantize`.
// A negative slot skips its token; a slot past the cache is an error.
void write_kv_quantized(const Tensor& k, const Tensor& v, const Tensor& slots,
                        QuantizedKvPlanes& cache);

// paged_attention (same q/out shapes, AttentionMeta and masks: causal, GQA, sliding_window) with
// the keys and values dequantized inside the kernel from their codes, scales and biases; nothing
// dequantized is written to memory. Matches dequantize-then-attend to f32 rounding.
void paged_attention_quantized(const Tensor& q, const QuantizedKvPlanes& cache,
                               const AttentionMeta& meta, float scale, Tensor& out);

}  // namespace hearth::ops
