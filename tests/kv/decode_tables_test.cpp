// The fixed-layout tables of a captured decode step (kv/attention_plan.h): every table a step
// packs must equal what make_attention_meta builds for the same prepared caches (the eager path),
// laid out at the capacity's width, with padding rows that attend nothing and write nowhere.
#include <gtest/gtest.h>

#include "kv/attention_plan.h"

namespace hearth::kv {
namespace {

KvLayout layout(int block_size) {
  KvLayout l;
  l.n_layers = 2;
  l.n_kv_heads = 1;
  l.head_dim = 4;
  l.block_size = block_size;
  return l;
}

// Grows a cache by n tokens (no model: the slots are not written, the tables are what matters).
void grow(KvCache& cache, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    cache.prepare_groups(1);
    cache.commit(1);
  }
}

std::vector<int32_t> span_of(const std::vector<int32_t>& packed, int64_t offset, int64_t n) {
  return {packed.begin() + offset, packed.begin() + offset + n};
}

struct Step {
  std::vector<KvCache*> caches;
  std::vector<int32_t> ids;
  std::vector<std::vector<int32_t>> slots;  // per group
  std::vector<int32_t> positions, query_start{0};
};

Step prepare(std::vector<KvCache*> caches) {
  Step s;
  s.caches = caches;
  s.slots.resize(size_t(caches[0]->num_groups()));
  for (KvCache* c : caches) {
    s.ids.push_back(int32_t(100 + s.ids.size()));
    s.positions.push_back(int32_t(c->size()));
    std::vector<std::vector<int32_t>> g = c->prepare_groups(1);
    for (size_t k = 0; k < g.size(); ++k) s.slots[k].push_back(g[k][0]);
    s.query_start.push_back(int32_t(s.query_start.size()));
  }
  return s;
}

// Checks meta `m` of the packed buffer against the eager meta of the same step.
void expect_meta_equal(const DecodeTableLayout& l, int m, const std::vector<int32_t>& packed,
                       const Step& step) {
  const DecodeMetaKey& key = l.metas[size_t(m)];
  const DecodeTableLayout::MetaTables& t = l.meta_tables[size_t(m)];
  Tensor qs = Tensor::from_vector(step.query_start, {int64_t(step.query_start.size())});
  ops::AttentionMeta eager =
      make_attention_meta(step.caches, key.group, key.model_window, step.query_start,
                          step.positions, qs, Device::cpu());
  const int64_t S = int64_t(step.caches.size());
  EXPECT_EQ(key.window, eager.sliding_window);
  EXPECT_EQ(key.by_position, eager.key_positions.defined());
  std::vector<int32_t> lens = eager.context_lens.to_vector<int32_t>();
  std::vector<int32_t> tables = eager.block_tables.to_vector<int32_t>();
  const int64_t width = eager.block_tables.dim(1);
  // The eager table has the width the graph's capacity rule gives (same attention split plan).
  if (t.capacity == table_capacity(blocks_needed(step.caches, key.group),
                                   step.caches[0]->pool().layout().block_size,
                                   step.caches[0]->pool().max_blocks())) {
    EXPECT_EQ(width, t.capacity);
  }
  for (int64_t s = 0; s < l.rows; ++s) {
    SCOPED_TRACE("row " + std::to_string(s));
    EXPECT_EQ(packed[size_t(t.context_lens + s)], s < S ? lens[size_t(s)] : 0);
    for (int64_t b = 0; b < t.capacity; ++b) {
      const int32_t want = s < S && b < width ? tables[size_t(s * width + b)] : 0;
      // Past a sequence's own blocks the eager table holds zeros too (it is padded to the widest).
      EXPECT_EQ(packed[size_t(t.block_tables + s * t.capacity + b)], want) << "block " << b;
    }
    if (!key.by_position) continue;
    std::vector<int32_t> kp = eager.key_positions.to_vector<int32_t>();
    std::vector<int32_t> qp = eager.query_positions.to_vector<int32_t>();
    const int64_t kw = eager.key_positions.dim(1);
    const int64_t slots = l.capacity_slots(size_t(m));
    for (int64_t j = 0; j < slots; ++j) {
      const int32_t want = s < S && j < kw ? kp[size_t(s * kw + j)] : -1;
      EXPECT_EQ(packed[size_t(t.key_positions + s * slots + j)], want) << "slot " << j;
    }
    if (s < S) {
      EXPECT_EQ(packed[size_t(t.query_positions + s)], qp[size_t(s)]);
    }
  }
}

TEST(DecodeTables, StandardCachesPaddedToTheBucket) {
  auto pool = std::make_shared<BlockPool>(layout(4), 32);
  KvCache a(pool), b(pool), c(pool);
  grow(a, 3);
  grow(b, 9);
  grow(c, 4);  // its step starts a new block
  Step step = prepare({&a, &b, &c});
  const DecodeMetaKey full = decode_meta_key(step.caches, 0, 0);
  const DecodeMetaKey windowed = decode_meta_key(step.caches, 0, 5);
  EXPECT_FALSE(full.by_position);
  EXPECT_EQ(windowed.window, 5);
  DecodeTableLayout l = plan_decode_tables(4, 4, 1, {full, windowed}, {32, 8});
  EXPECT_EQ(blocks_needed(step.caches, 0), 3);
  // 256 tokens at 4 per block would be 64 blocks; the pool has 32.
  EXPECT_EQ(table_capacity(3, 4, 32), 32);
  EXPECT_EQ(table_capacity(3, 4, 1000), 64);
  EXPECT_EQ(table_capacity(65, 4, 1000), 128);
  EXPECT_EQ(table_capacity(3, 32, 1000), 8);
  EXPECT_EQ(table_capacity(40, 4, 32), 40);
  for (int64_t offset : {l.ids, l.positions, l.query_start, l.slots[0],
                         l.meta_tables[0].block_tables, l.meta_tables[1].context_lens})
    EXPECT_EQ(offset % 4, 0) << "tables start 16-byte aligned";
  std::vector<int32_t> packed(size_t(l.total), 12345);
  pack_decode_tables(l, step.caches, step.ids, step.slots, packed.data());
  EXPECT_EQ(span_of(packed, l.ids, 4), (std::vector<int32_t>{100, 101, 102, 0}));
  EXPECT_EQ(span_of(packed, l.positions, 4), (std::vector<int32_t>{3, 9, 4, 0}));
  EXPECT_EQ(span_of(packed, l.query_start, 5), (std::vector<int32_t>{0, 1, 2, 3, 4}));
  std::vector<int32_t> slots = step.slots[0];
  slots.push_back(-1);  // the padding row writes nowhere
  EXPECT_EQ(span_of(packed, l.slots[0], 4), slots);
  expect_meta_equal(l, 0, packed, step);
  expect_meta_equal(l, 1, packed, step);

  // Views of the buffer (here on the host) as the graph's attention metadata.
  Tensor t = Tensor::from_vector(packed, {l.total});
  ops::AttentionMeta m = decode_meta_view(l, 1, t);
  EXPECT_EQ(m.block_tables.shape(), Dims({4, 8}));
  EXPECT_EQ(m.context_lens.to_vector<int32_t>(), (std::vector<int32_t>{4, 10, 5, 0}));
  EXPECT_EQ(m.max_context_len, 32);
  EXPECT_EQ(decode_meta_view(l, 0, t).block_tables.shape(), Dims({4, 32}));
  EXPECT_EQ(m.sliding_window, 5);
  EXPECT_FALSE(m.key_positions.defined());
}

TEST(DecodeTables, WrappedRingMasksByPosition) {
  // A ring of 8 slots under a model window of 5: once wrapped, one-token steps mask by position.
  auto pool = std::make_shared<BlockPool>(layout(4), 32);
  const std::vector<CachePolicy> ring(2, CachePolicy{8, 0});
  KvCache a(pool, ring), b(pool, ring);
  grow(a, 21);
  grow(b, 2);  // not wrapped yet: masked in slot order inside the same meta
  Step step = prepare({&a, &b});
  const DecodeMetaKey key = decode_meta_key(step.caches, 0, 5);
  ASSERT_TRUE(key.by_position);
  DecodeTableLayout l = plan_decode_tables(2, 4, 1, {key}, {4});
  std::vector<int32_t> packed(size_t(l.total));
  pack_decode_tables(l, step.caches, step.ids, step.slots, packed.data());
  expect_meta_equal(l, 0, packed, step);
  EXPECT_EQ(packed[size_t(l.meta_tables[0].query_positions)], 21);
  EXPECT_EQ(packed[size_t(l.meta_tables[0].query_positions + 1)], 2);
  Tensor t = Tensor::from_vector(packed, {l.total});
  ops::AttentionMeta m = decode_meta_view(l, 0, t);
  EXPECT_EQ(m.key_positions.shape(), Dims({2, 16}));
  EXPECT_EQ(m.query_positions.shape(), Dims({2}));
}

TEST(DecodeTables, RefusesTablesPastTheCapacityAndChangedKinds) {
  auto pool = std::make_shared<BlockPool>(layout(4), 32);
  KvCache a(pool);
  grow(a, 12);
  Step step = prepare({&a});
  EXPECT_EQ(blocks_needed(step.caches, 0), 4);
  DecodeTableLayout narrow = plan_decode_tables(1, 4, 1, {decode_meta_key(step.caches, 0, 0)}, {2});
  std::vector<int32_t> packed(size_t(narrow.total));
  EXPECT_THROW(pack_decode_tables(narrow, step.caches, step.ids, step.slots, packed.data()), Error);
  DecodeMetaKey stale = decode_meta_key(step.caches, 0, 0);
  stale.by_position = true;
  DecodeTableLayout changed = plan_decode_tables(1, 4, 1, {stale}, {8});
  packed.assign(size_t(changed.total), 0);
  EXPECT_THROW(pack_decode_tables(changed, step.caches, step.ids, step.slots, packed.data()),
               Error);
}

}  // namespace
}  // namespace hearth::kv
