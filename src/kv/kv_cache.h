// The KV cache of one sequence over all layers of a model: mlx-lm's list of per-layer caches.
// Each layer has a CachePolicy (standard or rotating); layers with the same policy share one
// LayerCache (layer_cache.h). Snapshots are cheap: they copy block tables and counters and
// retain the blocks; a later write into a shared block copies it first (copy-on-write).
#pragma once

#include <memory>
#include <vector>

#include "kv/block_pool.h"
#include "kv/layer_cache.h"

namespace hearth::kv {

// mlx-lm's `state` and `meta_state` of one layer: the buffer in buffer order and the counters.
struct LayerState {
  Tensor keys, values;  // host, the pool's dtype, [1, n_kv_heads, n, head_dim]
  int64_t offset = 0;
  int64_t idx = 0;  // rotating caches' _idx; standard caches: == offset
};

class KvSnapshot;

class KvCache {
 public:
  // A standard cache for every layer.
  explicit KvCache(std::shared_ptr<BlockPool> pool);
  // One policy per layer of the pool's layout.
  KvCache(std::shared_ptr<BlockPool> pool, const std::vector<CachePolicy>& layer_policies);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  BlockPool& pool() const { return *pool_; }
  const std::shared_ptr<BlockPool>& shared_pool() const { return pool_; }
  int n_layers() const { return int(group_of_layer_.size()); }
  // Tokens processed (mlx-lm's `offset`, the same in every layer).
  int64_t size() const;

  // Layer groups (layers with equal policies).
  int num_groups() const { return int(groups_.size()); }
  int group_of(int layer) const { return group_of_layer_[size_t(layer)]; }
  const LayerCache& group(int g) const { return groups_[size_t(g)]; }
  const LayerCache& layer(int l) const { return groups_[size_t(group_of(l))]; }
  const CachePolicy& policy(int l) const { return layer(l).policy(); }

  // The forward protocol: prepare_groups(n) returns each group's pool slots for n new tokens;
  // commit(n) once the forward pass wrote them.
  std::vector<std::vector<int32_t>> prepare_groups(int64_t n);
  void commit(int64_t n);
  // Single-group conveniences (every layer standard, or every layer the same policy).
  std::vector<int32_t> prepare_append(int64_t n);
  const std::vector<int32_t>& blocks() const;

  // mlx-lm's can_trim_prompt_cache / trim_prompt_cache over all layers.
  bool is_trimmable() const;
  int64_t trim(int64_t n);
  void clear();
  // Bytes of the pool blocks held by this sequence (blocks span every layer).
  size_t nbytes() const;

  // Cheap snapshot of every layer; restore() returns the cache to it (any number of times). A
  // snapshot keeps its blocks alive after the cache is gone.
  KvSnapshot snapshot() const;
  void restore(const KvSnapshot& snap);

  // mlx-lm state per layer (for prompt-cache files). keep/max_size come from policy(layer).
  int64_t offset(int l) const { return layer(l).offset(); }
  int64_t idx(int l) const { return layer(l).idx(); }
  LayerState read_state(int l) const;
  // Loads every layer (states.size() == n_layers()); layers of one group must carry the same
  // counters and lengths. The buffer's previous contents are dropped.
  void write_state(const std::vector<LayerState>& states);

 private:
  std::shared_ptr<BlockPool> pool_;
  std::vector<int> group_of_layer_;
  std::vector<LayerCache> groups_;
};

class KvSnapshot {
 public:
  KvSnapshot() = default;
  bool empty() const { return groups_.empty(); }
  int64_t size() const { return groups_.empty() ? 0 : groups_[0].offset(); }

 private:
  friend class KvCache;
  std::shared_ptr<BlockPool> pool_;
  std::vector<LayerCache> groups_;
};

}  // namespace hearth::kv
