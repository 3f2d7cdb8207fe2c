// The attention metadata of one forward step over a batch of caches: for one layer group and one
// model window, each sequence's block table, context and mask (ops::AttentionMeta). The decoder
// builds one per (group, window) its layers use; tests use it to drive caches directly.
//
// Block tables are `table_capacity` blocks wide, a width that changes only at doublings: the CUDA
// attention plans its key splits from the table width, and a captured decode step
// (model/decode_graph.h), which must keep one width for many steps, then splits exactly like the
// eager step (bit-identical results). It reads its tables from fixed device addresses:
// pack_decode_tables writes every table of a step (ids, positions, slots, and each meta's
// lengths, block tables and positions) into one i32 buffer of a fixed layout, sized for `rows`
// query rows (the batch padded to a bucket) and each meta's capacity, so that one host -> device
// copy refreshes them all.
#pragma once

#include <span>
#include <vector>

#include "kv/kv_cache.h"
#include "ops/attention.h"

namespace hearth::kv {

// `caches` were prepared for this step (prepare_groups); sequence s owns query rows
// [query_start[s], query_start[s + 1]) whose absolute positions are `positions` (all rows).
// Tensors are made on `device`; `query_start_on_device` is reused as meta.query_start.
ops::AttentionMeta make_attention_meta(std::span<KvCache* const> caches, int group,
                                       int model_window, const std::vector<int32_t>& query_start,
                                       const std::vector<int32_t>& positions,
                                       const Tensor& query_start_on_device, Device device);

// What one attention meta of a decode step is, beyond its table contents: a captured step is
// valid only while every key stays the same.
struct DecodeMetaKey {
  int group = 0;
  int model_window = 0;      // the layers' window (the lookup key)
  int window = 0;            // AttentionMeta::sliding_window (StepAttention::window)
  bool by_position = false;  // key/query positions present
  bool operator==(const DecodeMetaKey&) const = default;
};

// Smallest block-table width, in tokens (short contexts do not change width at every block).
inline constexpr int64_t kMinTableTokens = 256;
// Blocks per block-table row for a step whose widest table needs `needed` blocks: the smallest
// width >= needed of the series kMinTableTokens / block_size, doubled, ...; at most the pool's
// blocks (no table holds more), never below `needed`.
int64_t table_capacity(int64_t needed, int block_size, int64_t pool_blocks);

// The key of (group, model_window) for caches prepared for one token each.
DecodeMetaKey decode_meta_key(std::span<KvCache* const> caches, int group, int model_window);

// Offsets (in i32 elements) of every table in the packed buffer.
struct DecodeTableLayout {
  int rows = 0;  // query rows = sequences (one token each), padding included
  int block_size = 0;
  std::vector<DecodeMetaKey> metas;

  int64_t ids = 0, positions = 0, query_start = 0;
  std::vector<int64_t> slots;  // per layer group, `rows` each
  struct MetaTables {
    int64_t capacity = 0;  // blocks per block-table row
    int64_t context_lens = 0, block_tables = 0;
    int64_t key_positions = -1, query_positions = -1;  // by_position metas only
  };
  std::vector<MetaTables> meta_tables;
  int64_t total = 0;  // i32 elements

  int64_t capacity_slots(size_t m) const { return meta_tables[m].capacity * block_size; }
};

// capacities[m]: the block-table width of metas[m].
DecodeTableLayout plan_decode_tables(int rows, int block_size, int groups,
                                     std::vector<DecodeMetaKey> metas,
                                     const std::vector<int64_t>& capacities);

// Blocks the widest block table of layer group `group` needs in this step.
int64_t blocks_needed(std::span<KvCache* const> caches, int group);

// Writes a decode step into out[0, layout.total): caches.size() <= layout.rows sequences, each
// prepared for exactly one token `ids[s]`, whose pool slot in group g is group_slots[g][s]. Rows
// past the batch are padding: token 0 at position 0, slot -1 (not written), an empty context
// (attention sees nothing and outputs zeros); their results are to be ignored. Checks that the
// metas' keys still hold and every block table fits its capacity.
void pack_decode_tables(const DecodeTableLayout& layout, std::span<KvCache* const> caches,
                        std::span<const int32_t> ids,
                        const std::vector<std::vector<int32_t>>& group_slots, int32_t* out);

// Views of a device copy of the packed buffer (i32 [layout.total]): meta `m`'s AttentionMeta
// (max_context_len is the capacity: the kernels read the real lengths from context_lens), and
// the step's ids, positions and slots.
ops::AttentionMeta decode_meta_view(const DecodeTableLayout& layout, int m, const Tensor& tables);
Tensor decode_table_view(const Tensor& tables, int64_t offset, int64_t n);

}  // namespace hearth::kv
