#include "kv/kv_cache.h"

#include <gtest/gtest.h>

#include "core/memory_stats.h"

namespace hearth::kv {
namespace {

KvLayout small_layout(int block_size = 4) {
  KvLayout l;
  l.n_layers = 2;
  l.n_kv_heads = 2;
  l.head_dim = 8;
  l.block_size = block_size;
  return l;
}

TEST(BlockPool, AllocatesReleasesAndCountsReferences) {
  BlockPool pool(small_layout(), 3);
  EXPECT_EQ(pool.keys(1).shape(), Dims({3, 2, 4, 8}));
  size_t before = memory::current_bytes(DeviceKind::cpu);
  int32_t a = pool.allocate(), b = pool.allocate(), c = pool.allocate();
  EXPECT_EQ(pool.blocks_in_use(), 3);
  EXPECT_EQ(memory::current_bytes(DeviceKind::cpu) - before, 3 * small_layout().block_bytes());
  EXPECT_NE(a, b);
  EXPECT_NE(b, c);
  try {
    pool.allocate();
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::out_of_memory);
  }
  pool.retain(b);
  pool.release(b);
  EXPECT_EQ(pool.ref_count(b), 1);
  pool.release(b);
  EXPECT_EQ(pool.blocks_in_use(), 2);
  EXPECT_EQ(pool.allocate(), b);  // most recently freed first
  pool.release(a);
  pool.release(b);
  pool.release(c);
  EXPECT_EQ(memory::current_bytes(DeviceKind::cpu), before);
  EXPECT_THROW(pool.release(a), Error);
}

TEST(BlockPool, ReservedMemoryIsWritable) {
  BlockPool pool(small_layout(), 1000);
  int32_t b = pool.allocate();
  float* k = pool.keys(0).data<float>() + int64_t(b) * 2 * 4 * 8;
  for (int i = 0; i < 64; ++i) k[i] = float(i);
  EXPECT_EQ(k[63], 63.0f);
  pool.release(b);
}

TEST(KvCache, SlotsFollowTheBlockTable) {
  auto pool = std::make_shared<BlockPool>(small_layout(4), 8);
  KvCache cache(pool);
  std::vector<int32_t> s = cache.prepare_append(6);
  ASSERT_EQ(cache.blocks().size(), 2u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(s[i], cache.blocks()[i / 4] * 4 + i % 4);
  EXPECT_EQ(cache.size(), 0);
  cache.commit(6);
  EXPECT_EQ(cache.size(), 6);
  s = cache.prepare_append(3);  // fills row 2..3 of block 1, then a new block
  ASSERT_EQ(cache.blocks().size(), 3u);
  EXPECT_EQ(s[0], cache.blocks()[1] * 4 + 2);
  EXPECT_EQ(s[2], cache.blocks()[2] * 4 + 0);
  cache.commit(3);
  EXPECT_EQ(cache.nbytes(), 3 * small_layout(4).block_bytes());
  EXPECT_TRUE(cache.is_trimmable());
  EXPECT_EQ(cache.trim(5), 5);
  EXPECT_EQ(cache.size(), 4);
  EXPECT_EQ(cache.blocks().size(), 1u);
  EXPECT_EQ(pool->blocks_in_use(), 1);
  EXPECT_EQ(cache.trim(100), 4);
  EXPECT_EQ(pool->blocks_in_use(), 0);
}

TEST(KvCache, ReleasesBlocksOnDestruction) {
  auto pool = std::make_shared<BlockPool>(small_layout(4), 8);
  {
    KvCache cache(pool);
    cache.prepare_append(9);
    cache.commit(9);
    EXPECT_EQ(pool->blocks_in_use(), 3);
  }
  EXPECT_EQ(pool->blocks_in_use(), 0);
}

TEST(KvCache, CommitMoreThanPreparedIsABug) {
  auto pool = std::make_shared<BlockPool>(small_layout(4), 8);
  KvCache cache(pool);
  cache.prepare_append(2);
  EXPECT_THROW(cache.commit(3), Error);
}

}  // namespace
}  // namespace hearth::kv
