#include "kv/attention_plan.h"

#include <algorithm>

#include "ops/copy.h"

namespace hearth::kv {
namespace {

Tensor to_device(const std::vector<int32_t>& values, const Dims& shape, Device device) {
  return ops::to_device(Tensor::from_vector(values, shape), device);
}

}  // namespace

ops::AttentionMeta make_attention_meta(std::span<KvCache* const> caches, int group,
                                       int model_window, const std::vector<int32_t>& query_start,
                                       const std::vector<int32_t>& positions,
                                       const Tensor& query_start_on_device, Device device) {
  const int g = group;
  const int64_t S = int64_t(caches.size());
  HEARTH_CHECK(S > 0 && int64_t(query_start.size()) == S + 1);
  const int64_t T = query_start.back();
  HEARTH_CHECK(int64_t(positions.size()) == T);
  int max_q = 0;
  for (int64_t s = 0; s < S; ++s)
    max_q = std::max(max_q, query_start[size_t(s) + 1] - query_start[size_t(s)]);
  std::vector<StepAttention> steps;
  size_t max_blocks = 0;
  int max_ctx = 0;
  bool by_position = false;
  for (const KvCache* cache : caches) {
    const LayerCache& lc = cache->group(g);
    steps.push_back(lc.step_attention(model_window));
    HEARTH_CHECK(steps.back().window == steps[0].window, "batch windows differ");
    by_position |= steps.back().use_positions;
    max_blocks = std::max(max_blocks, lc.blocks().size());
    max_ctx = std::max(max_ctx, int(steps.back().context));
  }
  const int64_t width = table_capacity(int64_t(max_blocks), caches[0]->pool().layout().block_size,
                                       caches[0]->pool().max_blocks());
  std::vector<int32_t> tables(size_t(S * width), 0), context_lens;
  for (int64_t s = 0; s < S; ++s) {
    const auto& blocks = caches[size_t(s)]->group(g).blocks();
    std::copy(blocks.begin(), blocks.end(), tables.begin() + s * width);
    context_lens.push_back(int32_t(steps[size_t(s)].context));
  }
  ops::AttentionMeta m;
  m.query_start = query_start_on_device;
  m.context_lens = to_device(context_lens, {S}, device);
  m.block_tables = to_device(tables, {S, width}, device);
  m.max_query_len = max_q;
  m.max_context_len = max_ctx;
  m.sliding_window = steps[0].window;
  if (by_position) {
    // Sequences masked in slot order get their slot indices as positions (the same mask). Rows
    // span the table's slots, which the attention's split plan then sees as the bound.
    const int64_t kw = width * caches[0]->pool().layout().block_size;
    std::vector<int32_t> key_pos(size_t(S * kw), -1), query_pos(static_cast<size_t>(T));
    for (int64_t s = 0; s < S; ++s) {
      const StepAttention& a = steps[size_t(s)];
      const auto& slot_pos = caches[size_t(s)]->group(g).slot_positions();
      const int64_t q0 = query_start[size_t(s)], qn = query_start[size_t(s) + 1] - q0;
      for (int64_t j = 0; j < a.context; ++j)
        key_pos[size_t(s * kw + j)] = a.use_positions ? slot_pos[size_t(j)] : int32_t(j);
      for (int64_t i = 0; i < qn; ++i)
        query_pos[size_t(q0 + i)] =
            a.use_positions ? positions[size_t(q0 + i)] : int32_t(a.context - qn + i);
    }
    m.key_positions = to_device(key_pos, {S, kw}, device);
    m.query_positions = to_device(query_pos, {T}, device);
  }
  return m;
}

}  // namespace hearth::kv

namespace hearth::kv {

DecodeMetaKey decode_meta_key(std::span<KvCache* const> caches, int group, int model_window) {
  HEARTH_CHECK(!caches.empty());
  DecodeMetaKey key;
  key.group = group;
  key.model_window = model_window;
  for (size_t s = 0; s < caches.size(); ++s) {
    const StepAttention a = caches[s]->group(group).step_attention(model_window);
    if (s == 0) key.window = a.window;
    HEARTH_CHECK(a.window == key.window, "batch windows differ");
    key.by_position |= a.use_positions;
  }
  return key;
}

int64_t table_capacity(int64_t needed, int block_size, int64_t pool_blocks) {
  HEARTH_CHECK(block_size > 0);
  int64_t c = std::max<int64_t>(1, (kMinTableTokens + block_size - 1) / block_size);
  while (c < needed) c *= 2;
  return std::max(needed, std::min(c, pool_blocks));
}

DecodeTableLayout plan_decode_tables(int rows, int block_size, int groups,
                                     std::vector<DecodeMetaKey> metas,
                                     const std::vector<int64_t>& capacities) {
  HEARTH_CHECK(rows > 0 && block_size > 0 && groups > 0 && capacities.size() == metas.size());
  DecodeTableLayout l;
  l.rows = rows;
  l.block_size = block_size;
  l.metas = std::move(metas);
  int64_t at = 0;
  auto take = [&](int64_t n) {
    const int64_t offset = at;
    // Each table starts 16-byte aligned (vector loads of whole rows stay possible).
    at += (n + 3) / 4 * 4;
    return offset;
  };
  l.ids = take(rows);
  l.positions = take(rows);
  l.query_start = take(rows + 1);
  for (int g = 0; g < groups; ++g) l.slots.push_back(take(rows));
  for (size_t m = 0; m < l.metas.size(); ++m) {
    const DecodeMetaKey& key = l.metas[m];
    HEARTH_CHECK(key.group >= 0 && key.group < groups && capacities[m] > 0);
    DecodeTableLayout::MetaTables t;
    t.capacity = capacities[m];
    t.context_lens = take(rows);
    t.block_tables = take(int64_t(rows) * t.capacity);
    if (key.by_position) {
      t.key_positions = take(int64_t(rows) * t.capacity * block_size);
      t.query_positions = take(rows);
    }
    l.meta_tables.push_back(t);
  }
  l.total = at;
  return l;
}

int64_t blocks_needed(std::span<KvCache* const> caches, int group) {
  int64_t blocks = 0;
  for (const KvCache* cache : caches)
    blocks = std::max<int64_t>(blocks, int64_t(cache->group(group).blocks().size()));
  return blocks;
}

void pack_decode_tables(const DecodeTableLayout& l, std::span<KvCache* const> caches,
                        std::span<const int32_t> ids,
                        const std::vector<std::vector<int32_t>>& group_slots, int32_t* out) {
  const int64_t S = int64_t(caches.size()), R = l.rows;
  HEARTH_CHECK(S > 0 && S <= R && int64_t(ids.size()) == S, "{} sequences, {} ids, {} rows", S,
               ids.size(), R);
  HEARTH_CHECK(group_slots.size() == l.slots.size(), "slots of {} groups for {}",
               group_slots.size(), l.slots.size());
  std::fill(out, out + l.total, 0);
  for (int64_t s = 0; s < R; ++s) {
    const bool real = s < S;
    out[l.ids + s] = real ? ids[size_t(s)] : 0;
    out[l.positions + s] = real ? int32_t(caches[size_t(s)]->size()) : 0;
    out[l.query_start + s] = int32_t(s);
    for (size_t g = 0; g < l.slots.size(); ++g) {
      HEARTH_CHECK(int64_t(group_slots[g].size()) == S);
      out[l.slots[g] + s] = real ? group_slots[g][size_t(s)] : -1;
    }
  }
  out[l.query_start + R] = int32_t(R);
  for (size_t m = 0; m < l.metas.size(); ++m) {
    const DecodeMetaKey& key = l.metas[m];
    const DecodeTableLayout::MetaTables& t = l.meta_tables[m];
    const int64_t width = l.capacity_slots(m);
    HEARTH_CHECK(decode_meta_key(caches, key.group, key.model_window) == key,
                 "decode tables: the attention of group {} changed kind", key.group);
    for (int64_t s = 0; s < R; ++s) {
      if (s >= S) {  // padding: no keys at all
        if (key.by_position) std::fill_n(out + t.key_positions + s * width, width, -1);
        continue;
      }
      const LayerCache& lc = caches[size_t(s)]->group(key.group);
      const StepAttention a = lc.step_attention(key.model_window);
      const auto& blocks = lc.blocks();
      HEARTH_CHECK(int64_t(blocks.size()) <= t.capacity && a.context <= width,
                   "decode tables: {} blocks ({} slots) exceed the capacity of {}", blocks.size(),
                   a.context, t.capacity);
      out[t.context_lens + s] = int32_t(a.context);
      std::copy(blocks.begin(), blocks.end(), out + t.block_tables + s * t.capacity);
      if (key.by_position) {
        // As make_attention_meta: sequences masked in slot order get slot indices as positions.
        int32_t* kp = out + t.key_positions + s * width;
        const auto& slot_pos = lc.slot_positions();
        for (int64_t j = 0; j < width; ++j)
          kp[j] = j >= a.context ? -1 : a.use_positions ? slot_pos[size_t(j)] : int32_t(j);
        out[t.query_positions + s] =
            a.use_positions ? int32_t(caches[size_t(s)]->size()) : int32_t(a.context - 1);
      }
    }
  }
}

Tensor decode_table_view(const Tensor& tables, int64_t offset, int64_t n) {
  return tables.slice(0, offset, offset + n);
}

ops::AttentionMeta decode_meta_view(const DecodeTableLayout& l, int m, const Tensor& tables) {
  const DecodeTableLayout::MetaTables& t = l.meta_tables[size_t(m)];
  const int64_t width = l.capacity_slots(size_t(m));
  ops::AttentionMeta meta;
  meta.query_start = decode_table_view(tables, l.query_start, l.rows + 1);
  meta.context_lens = decode_table_view(tables, t.context_lens, l.rows);
  meta.block_tables =
      decode_table_view(tables, t.block_tables, l.rows * t.capacity).reshape({l.rows, t.capacity});
  meta.max_query_len = 1;
  meta.max_context_len = int(width);
  meta.sliding_window = l.metas[size_t(m)].window;
  if (l.metas[size_t(m)].by_position) {
    meta.key_positions =
        decode_table_view(tables, t.key_positions, l.rows * width).reshape({l.rows, width});
    meta.query_positions = decode_table_view(tables, t.query_positions, l.rows);
  }
  return meta;
}

}  // namespace hearth::kv
