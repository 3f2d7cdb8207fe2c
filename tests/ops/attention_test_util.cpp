#include "attention_test_util.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <random>

namespace hearth::ops::testing {

std::string describe(const AttentionCase& c) {
  std::string s = "seqs=";
  for (const SeqSpec& q : c.seqs) s += fmt::format("({},{})", q.context, q.q_len);
  s += fmt::format(" heads={}/{} d={} bs={} window={}", c.n_heads, c.n_kv, c.head_dim, c.block_size,
                   c.window);
  if (c.bits > 0)
    return s + fmt::format(" bits={} gs={} scales={}", c.bits, c.group_size, dtype_name(c.dtype));
  return s + fmt::format(" cache={}", dtype_name(c.dtype));
}

PagedTables build_tables(const AttentionCase& c, Rng& rng) {
  PagedTables p;
  p.block_size = c.block_size;
  const int64_t num_seqs = int64_t(c.seqs.size());
  int64_t needed = 0;
  p.max_blocks = 1;
  for (const SeqSpec& s : c.seqs) {
    const int64_t blocks = (s.context + c.block_size - 1) / c.block_size;
    needed += blocks;
    p.max_blocks = std::max(p.max_blocks, blocks + 1);  // one spare column, never valid
    p.tokens += s.q_len;
  }
  p.num_blocks = needed + 3;  // unowned blocks stay poisoned
  std::vector<int32_t> ids(static_cast<size_t>(p.num_blocks));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng.engine());
  p.table.assign(static_cast<size_t>(num_seqs * p.max_blocks), -7);
  std::vector<int32_t> starts{0}, lens;
  size_t next = 0;
  for (int64_t s = 0; s < num_seqs; ++s) {
    const SeqSpec& spec = c.seqs[size_t(s)];
    const int64_t blocks = (spec.context + c.block_size - 1) / c.block_size;
    for (int64_t j = 0; j < blocks; ++j) p.table[size_t(s * p.max_blocks + j)] = ids[next++];
    starts.push_back(starts.back() + int32_t(spec.q_len));
    lens.push_back(int32_t(spec.context));
    p.meta.max_query_len = std::max<int>(p.meta.max_query_len, int(spec.q_len));
    p.meta.max_context_len = std::max<int>(p.meta.max_context_len, int(spec.context));
  }
  p.meta.query_start = Tensor::from_vector(starts, {num_seqs + 1});
  p.meta.context_lens = Tensor::from_vector(lens, {num_seqs});
  p.meta.block_tables = Tensor::from_vector(p.table, {num_seqs, p.max_blocks});
  p.meta.sliding_window = c.window;
  return p;
}

void set_shuffled_positions(const AttentionCase& c, AttentionMeta& meta, Rng& rng) {
  int64_t max_ctx = 0;
  for (const SeqSpec& s : c.seqs) max_ctx = std::max(max_ctx, s.context);
  const int64_t S = int64_t(c.seqs.size());
  std::vector<int32_t> kpos(size_t(S * (max_ctx + 2)), -3), qpos;
  for (int64_t s = 0; s < S; ++s) {
    const SeqSpec& spec = c.seqs[size_t(s)];
    const int32_t base = int32_t(std::uniform_int_distribution<int>(0, 50)(rng.engine()));
    std::vector<int32_t> order(size_t(spec.context));
    std::iota(order.begin(), order.end(), base);
    std::shuffle(order.begin(), order.end(), rng.engine());
    // The queries' own positions are the last q_len; one older slot is left empty.
    for (int64_t j = 0; j < spec.context; ++j) {
      int32_t p = order[size_t(j)];
      if (spec.context > spec.q_len + 1 && p == base) p = -1;
      kpos[size_t(s * (max_ctx + 2) + j)] = p;
    }
    for (int64_t i = 0; i < spec.q_len; ++i)
      qpos.push_back(base + int32_t(spec.context - spec.q_len + i));
  }
  meta.key_positions = Tensor::from_vector(kpos, {S, max_ctx + 2});
  meta.query_positions = Tensor::from_vector(qpos, {int64_t(qpos.size())});
}

AttentionMeta meta_to_dev(const OpTest& t, const AttentionMeta& meta) {
  AttentionMeta d = meta;
  d.query_start = t.to_dev(meta.query_start);
  d.context_lens = t.to_dev(meta.context_lens);
  d.block_tables = t.to_dev(meta.block_tables);
  if (meta.key_positions.defined()) d.key_positions = t.to_dev(meta.key_positions);
  if (meta.query_positions.defined()) d.query_positions = t.to_dev(meta.query_positions);
  return d;
}

}  // namespace hearth::ops::testing
