// Attention over a paged KV cache, and the write of new keys/values into it.
//
// KV cache layout (one tensor for keys and one for values per layer):
//   [num_blocks, n_kv_heads, block_size, head_dim]
// A sequence's block table lists the blocks of its logical slots in order: slot t of the sequence
// lives in block block_table[t / block_size] at row t % block_size. Without positions, slot t
// holds the token at position t (the mask is in slot order; a rotating cache's buffer in temporal
// order is attended this way too); with AttentionMeta's positions, any slot order works.
#pragma once

#include "core/tensor.h"

namespace hearth::ops {

// A ragged batch of S sequences. Tensors live on the device of the op (i32, host tensors on CPU).
struct AttentionMeta {
  Tensor query_start;  // i32 [S + 1]: sequence s owns query rows [query_start[s], query_start[s+1])
  Tensor context_lens;  // i32 [S]: tokens in sequence s's cache including the new ones; its
                        // queries are the last (query_start[s+1] - query_start[s]) of them
  Tensor block_tables;  // i32 [S, max_blocks_per_sequence]
  int max_query_len = 0;
  int max_context_len = 0;
  // 0: full causal attention. Otherwise a query at position p sees key j only if p - j < window
  // (HF's sliding-window mask for Mistral / Qwen2).
  int sliding_window = 0;
  // Optional, both or neither: absolute positions for caches whose slot order is not token order
  // (a wrapped rotating cache). key_positions i32 [S, P] with P >= every context length: the
  // position of the token in slot j of sequence s (negative: an empty slot, never visible);
  // query_positions i32 [T]. When set, query t sees slot j iff 0 <= kpos <= qpos and
  // (sliding_window == 0 or qpos - kpos < sliding_window); slot order does not matter.
  Tensor key_positions;
  Tensor query_positions;
};

// q: [T, n_heads, head_dim]; out: same shape, f32. n_heads must be a multiple of n_kv_heads
// (GQA/MQA: query head h reads kv head h / (n_heads / n_kv_heads)). Causal within each sequence.
// query_start runs from 0 to T: every row of q belongs to a sequence.
void paged_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                     const AttentionMeta& meta, float scale, Tensor& out);

// The checks of meta's sequence tables (query_start, context_lens, block_tables, sliding_window:
// dtypes, shapes, device) that every paged-attention front-end shares; errors start with `op`.
void check_attention_tables(const char* op, const AttentionMeta& meta, Device device);

// k, v: [T, n_kv_heads, head_dim]; slots: i32 [T], slot = block * block_size + row. Converts to
// the cache dtype. A negative slot skips its token (padding); a slot past the cache is an error.
// write_kv's argument checks (rope_qk_write_kv shares them); errors name `op`.
void check_write_kv(const char* op, const Tensor& k, const Tensor& v, const Tensor& slots,
                    const Tensor& k_cache, const Tensor& v_cache);
void write_kv(const Tensor& k, const Tensor& v, const Tensor& slots, Tensor& k_cache,
              Tensor& v_cache);

}  // namespace hearth::ops
