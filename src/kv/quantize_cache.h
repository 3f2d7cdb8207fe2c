// The quantized KV cache (mlx-lm's QuantizedKVCache) as a storage format of the paged pool:
// converting a dense cache (mlx-lm's KVCache.to_quantized / maybe_quantize_kv_cache) and reading or
// writing one layer's quantized planes in temporal order (prompt-cache files).
#pragma once

#include <cstdint>
#include <memory>

#include "kv/kv_cache.h"

namespace hearth::kv {

// mlx-lm's generate_step options for the quantized cache. bits 0: never quantize.
struct KvQuantizationOptions {
  int bits = 0;
  int group_size = 64;
  int64_t start = 5000;  // quantized_kv_start
};

// A new cache over a new quantized pool (same block size, max_blocks and dtype as the dense one;
// kv_bits/kv_group_size set) holding every stored token of `dense` quantized, in the same order.
// `dense` is left as it is. Errors: `dense` already quantized, unsupported bits/group size
// (both name the values), a group size that does not divide head_dim.
std::shared_ptr<KvCache> quantize_cache(const KvCache& dense, int bits, int group_size);

// mlx-lm's maybe_quantize_kv_cache, called after each forward pass (every prefill chunk and every
// step): when options.bits > 0, the cache is still dense and holds at least options.start tokens
// (mlx-lm: `c.offset >= quantized_kv_start`), returns the quantized replacement; otherwise returns
// `cache` unchanged. A rotating cache cannot be quantized (mlx-lm raises NotImplementedError):
// the caller rejects kv_bits with max_kv_size up front.
std::shared_ptr<KvCache> maybe_quantize_cache(std::shared_ptr<KvCache> cache,
                                              const KvQuantizationOptions& options);

// One layer of mlx-lm's QuantizedKVCache state for tokens [0, T) in temporal order, host tensors:
//   k_packed/v_packed: u32 [1, n_kv_heads, T, head_dim * bits / 32]
//   k_scales, k_biases, v_scales, v_biases: [1, n_kv_heads, T, head_dim / group_size] in the
//   pool's dtype.
// mlx-lm saves it as ((k_packed, k_scales, k_biases), (v_packed, v_scales, v_biases)) with
// meta_state (offset, group_size, bits).
struct QuantizedLayerState {
  Tensor k_packed, k_scales, k_biases;
  Tensor v_packed, v_scales, v_biases;
};

// Copies out layer `layer` of a quantized cache (all cache.size() tokens).
QuantizedLayerState read_quantized_layer(const KvCache& cache, int layer);
// Writes tokens [0, T) of layer `layer` from `state` (T = its dim 2) into a quantized cache that
// already holds at least T tokens (e.g. after prepare_append(T) and commit(T)); shapes, dtypes and
// bits are checked against the pool with errors naming the plane.
void write_quantized_layer(KvCache& cache, int layer, const QuantizedLayerState& state);

// A fresh quantized cache holding `layers` (one state per model layer, all with the same T):
// what loading a prompt-cache file of QuantizedKVCache entries needs. `layout` must have kv_bits
// set; the pool gets room for T + extra_tokens tokens.
std::shared_ptr<KvCache> make_quantized_cache(const KvLayout& layout,
                                              const std::vector<QuantizedLayerState>& layers,
                                              int64_t extra_tokens);

}  // namespace hearth::kv
