// The cache of one group of layers of one sequence: mlx-lm's per-layer KVCache or
// RotatingKVCache, as a policy over the paged pool. Layers with the same policy receive the same
// updates, so their counters and block tables are identical and one LayerCache serves them all
// (the pool's blocks hold every layer; each group uses its own blocks).
//
// The buffer: logical slot i (mlx-lm's keys[..., i, :]) lives at pool slot
// blocks[i / block_size] * block_size + i % block_size. Standard caches hold the tokens in order
// (slot i = token i). Rotating caches follow RotatingKVCache's buffer layout exactly, counters
// included (offset, _idx, the buffer length that grows in steps of 256 and temporarily reaches
// max_size + S - 1 after a multi-token update), so the exported `state` equals mlx-lm's.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kv/block_pool.h"

namespace hearth::kv {

struct CachePolicy {
  int64_t max_size = 0;  // 0: standard (grows without bound); > 0: rotating ring of max_size slots
  int64_t keep = 0;      // rotating: sink tokens (the first `keep`) that are never overwritten
  bool rotating() const { return max_size > 0; }
  bool operator==(const CachePolicy&) const = default;
};

// How one forward step of one sequence attends over a LayerCache (see ops::AttentionMeta).
struct StepAttention {
  int64_t context = 0;  // logical slots [0, context) are read; the new tokens are the last ones
  // 0: every earlier slot; else the sliding window, in slot order (or in positions, below). For a
  // ring it is the model's window or max_size in both modes, so a batch's sequences agree.
  int window = 0;
  // true: mask by the absolute position of each slot (key_positions) rather than by slot order;
  // needed on a wrapped ring whose window is smaller than the ring.
  bool use_positions = false;
};

class LayerCache {
 public:
  LayerCache(std::shared_ptr<BlockPool> pool, CachePolicy policy);
  ~LayerCache();
  LayerCache(const LayerCache& other);  // shares (retains) the blocks: a snapshot
  LayerCache& operator=(const LayerCache& other);

  const CachePolicy& policy() const { return policy_; }
  // Tokens processed (mlx-lm's `offset`; keeps counting past max_size: RoPE positions continue).
  int64_t offset() const { return offset_; }
  // mlx-lm's `_idx` (rotating: the next write position of the ring; standard: == offset).
  int64_t idx() const { return idx_; }
  // mlx-lm's keys.shape[2]: slots of the buffer, written or not.
  int64_t buffer_length() const { return buffer_len_; }
  // mlx-lm's size(): min(offset, max_size) for a rotating cache, offset otherwise.
  int64_t size() const;
  // Slots mlx-lm's `state` holds: min(offset, buffer_length).
  int64_t state_length() const;
  const std::vector<int32_t>& blocks() const { return blocks_; }
  // Absolute position of the token in each written logical slot (-1: never written).
  const std::vector<int32_t>& slot_positions() const { return slot_pos_; }
  int64_t pool_slot(int64_t logical) const;

  // Applies mlx-lm's update for n new tokens (moving buffer rows where mlx-lm re-linearizes or
  // trims) and returns the pool slots the new tokens must be written to. The counters advance on
  // commit(n), after the forward pass wrote them.
  std::vector<int32_t> prepare_append(int64_t n);
  void commit(int64_t n);
  // Attention of the step just prepared, for a layer whose model window is `model_window`
  // (0: full attention).
  StepAttention step_attention(int model_window) const;

  bool is_trimmable() const;
  int64_t trim(int64_t n);
  // Bytes of the pool blocks this group holds (a block spans every layer of the model).
  size_t nbytes() const;

  // Replaces the contents with mlx-lm state: `n` buffer slots (the caller writes their KV through
  // pool_slot) and the counters. Checks them against the policy.
  void reset_to_state(int64_t n, int64_t offset, int64_t idx);

 private:
  void release_all();
  // Makes logical slot `slot` writable: allocates its block, or copies a shared one first.
  void make_writable(int64_t slot);
  // Rebuilds the buffer as `order` (new logical slot i takes old slot order[i]) in fresh blocks.
  void relayout(const std::vector<int64_t>& order);

  std::shared_ptr<BlockPool> pool_;
  CachePolicy policy_;
  std::vector<int32_t> blocks_;
  std::vector<int32_t> slot_pos_;
  int64_t offset_ = 0, idx_ = 0, buffer_len_ = 0;
  // Prepared step: counters after commit, and the step's attention.
  int64_t pending_ = 0, next_idx_ = 0, next_buffer_len_ = 0, step_context_ = 0;
  bool step_in_place_ = false;
};

}  // namespace hearth::kv
