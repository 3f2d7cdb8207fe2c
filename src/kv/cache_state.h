// A cache as mlx-lm serializes it, one entry per layer: the Python class name, the meta_state
// strings and the named state arrays. This is the exchange format between hearth's paged caches
// and prompt-cache files (prompt_cache_file.h), so files written by mlx-lm load in hearth and the
// other way round. Arrays are host tensors in mlx-lm's layout ([1, n_kv_heads, T, head_dim]).
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "kv/kv_cache.h"

namespace hearth::kv {

// mlx-lm's class names (`type(c).__name__`), as written under the "2.<layer>" metadata keys.
inline constexpr std::string_view kStandardCacheClass = "KVCache";
inline constexpr std::string_view kRotatingCacheClass = "RotatingKVCache";
inline constexpr std::string_view kQuantizedCacheClass = "QuantizedKVCache";

struct LayerCacheState {
  std::string class_name;
  // mlx-lm's meta_state is either a plain string (KVCache: "", flattened to the one key
  // "0.<layer>") or a tuple of strings (RotatingKVCache: keep, max_size, offset, _idx;
  // QuantizedKVCache: offset, group_size, bits; flattened to "0.<layer>.<k>"). Exactly one of
  // the two is used.
  std::optional<std::string> meta_string;
  std::vector<std::string> meta_tuple;
  // The state arrays named by their path below the layer, as mlx's tree_flatten spells it:
  // "0" keys and "1" values for KVCache and RotatingKVCache; "0.0", "0.1", "0.2" (packed,
  // scales, biases of the keys) and "1.0", "1.1", "1.2" (values) for QuantizedKVCache.
  std::vector<std::pair<std::string, Tensor>> arrays;

  // The array named `name`, or nullptr.
  const Tensor* find(std::string_view name) const;
};

// The state of every layer as mlx-lm saves it: a standard layer is a KVCache (keys and values of
// its tokens, meta_state ""), a rotating one a RotatingKVCache (the ring buffer in buffer order,
// meta_state (keep, max_size, offset, _idx)); host tensors [1, n_kv_heads, n, head_dim] in the
// cache dtype (KvCache::read_state); a quantized cache's layers are QuantizedKVCache (the six
// planes of kv::read_quantized_layer, meta_state (offset, group_size, bits)). The cache must hold
// at least one token (mlx cannot save empty arrays either).
std::vector<LayerCacheState> export_cache_state(const KvCache& cache);

// A new cache over a new pool of `layout` holding the per-layer states (one per layer of the
// layout; each layer's policy comes from its class and meta_state), with room for `extra_tokens`
// more tokens (KvCache::write_state converts to the cache dtype and device). Errors are `format`
// errors that start with `source` (the file) and name the layer, array or meta_state key at fault:
// wrong layer count, missing array, wrong shape for the model (KV heads, head dim), KVCache layers
// of different lengths, bad RotatingKVCache / QuantizedKVCache counters, planes that do not fit
// the bits and group size. QuantizedKVCache layers make a quantized pool (scales and biases
// converted to `layout.dtype`); a file mixing quantized and dense layers is `unsupported`.
std::shared_ptr<KvCache> cache_from_state(const KvLayout& layout,
                                          std::span<const LayerCacheState> layers,
                                          int64_t extra_tokens, std::string_view source);

}  // namespace hearth::kv
