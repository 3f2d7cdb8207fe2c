// The standard KV cache of one sequence: a block table over the shared pool and a length.
// Later cache kinds (rotating, quantized, SnapKV) are policies over the same storage.
#pragma once

#include <memory>
#include <vector>

#include "kv/block_pool.h"

namespace hearth::kv {

class KvCache {
 public:
  explicit KvCache(std::shared_ptr<BlockPool> pool);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  BlockPool& pool() const { return *pool_; }
  // Tokens stored (mlx-lm's `offset`).
  int64_t size() const { return length_; }
  const std::vector<int32_t>& blocks() const { return blocks_; }

  // Makes room for n more tokens and returns their slots (block * block_size + row), in order.
  // The tokens count as stored once `commit(n)` is called after the forward pass wrote them.
  std::vector<int32_t> prepare_append(int64_t n);
  void commit(int64_t n);

  bool is_trimmable() const { return true; }
  // Drops the last n tokens (fewer if the cache holds fewer); returns how many were dropped.
  int64_t trim(int64_t n);
  void clear() { trim(length_); }
  // Bytes of KV held by this sequence's blocks.
  size_t nbytes() const { return blocks_.size() * pool_->layout().block_bytes(); }

 private:
  std::shared_ptr<BlockPool> pool_;
  std::vector<int32_t> blocks_;
  int64_t length_ = 0;
  int64_t pending_ = 0;  // prepared but not committed
};

}  // namespace hearth::kv
