// The quantized KV storage format: plane shapes and bytes, copy_block, conversion of a dense cache
// (bit-identical to quantizing on write), maybe_quantize_cache's threshold, and the temporal-order
// read/write of one layer's planes used by prompt-cache files.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "kv/quantize_cache.h"
#include "ops/attention.h"
#include "ops/quantized_attention.h"

namespace hearth::kv {
namespace {

KvLayout layout(int bits, int group_size = 32, DType dtype = DType::f32) {
  KvLayout l;
  l.n_layers = 2;
  l.n_kv_heads = 2;
  l.head_dim = 64;
  l.block_size = 4;
  l.dtype = dtype;
  l.kv_bits = bits;
  l.kv_group_size = group_size;
  return l;
}

Tensor random_kv(int64_t tokens, const KvLayout& l, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.5f);
  std::vector<float> v(size_t(tokens * l.n_kv_heads * l.head_dim));
  for (float& x : v) x = dist(rng) + 0.5f;
  return Tensor::from_vector(v, {tokens, l.n_kv_heads, l.head_dim});
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

bool same_state(const QuantizedLayerState& a, const QuantizedLayerState& b) {
  return same_bytes(a.k_packed, b.k_packed) && same_bytes(a.k_scales, b.k_scales) &&
         same_bytes(a.k_biases, b.k_biases) && same_bytes(a.v_packed, b.v_packed) &&
         same_bytes(a.v_scales, b.v_scales) && same_bytes(a.v_biases, b.v_biases);
}

// Appends `tokens` tokens of the given K/V to every layer of the cache (layer l gets k + l).
void append(KvCache& cache, const Tensor& k, const Tensor& v) {
  const int64_t n = k.dim(0);
  std::vector<int32_t> s = cache.prepare_append(n);
  Tensor slots = Tensor::from_vector(s, {n});
  BlockPool& pool = cache.pool();
  for (int l = 0; l < pool.layout().n_layers; ++l) {
    Tensor kl = Tensor::empty(k.shape(), DType::f32), vl = Tensor::empty(v.shape(), DType::f32);
    for (int64_t i = 0; i < k.numel(); ++i) {
      kl.data<float>()[i] = k.data<float>()[i] + float(l);
      vl.data<float>()[i] = v.data<float>()[i] - float(l);
    }
    if (pool.layout().quantized()) {
      ops::QuantizedKvPlanes planes = pool.quantized_planes(l);
      ops::write_kv_quantized(kl, vl, slots, planes);
    } else {
      Tensor keys = pool.keys(l), values = pool.values(l);
      ops::write_kv(kl, vl, slots, keys, values);
    }
  }
  cache.commit(n);
}

TEST(QuantizedPool, PlaneShapesAndBytes) {
  for (DType dtype : {DType::f32, DType::bf16}) {
    KvLayout l = layout(4, 32, dtype);
    BlockPool pool(l, 3);
    ops::QuantizedKvPlanes p = pool.quantized_planes(1);
    EXPECT_EQ(p.k_packed.shape(), Dims({3, 2, 4, 8}));  // 64 codes of 4 bits = 8 words
    EXPECT_EQ(p.v_scales.shape(), Dims({3, 2, 4, 2}));
    EXPECT_EQ(p.k_biases.dtype(), dtype);
    EXPECT_EQ(p.head_dim(), 64);
    // Per layer and K or V: rows * (32 bytes of codes + 2 groups * (scale + bias)).
    EXPECT_EQ(l.block_bytes_per_layer(), size_t(2 * 4) * (32 + 2 * 2 * dtype_size(dtype)));
    EXPECT_EQ(l.block_bytes(), 2 * 2 * l.block_bytes_per_layer());
    EXPECT_THROW(pool.keys(0), Error);
  }
  KvLayout dense = layout(0);
  EXPECT_EQ(dense.block_bytes_per_layer(), size_t(2 * 4 * 64 * 4));
  EXPECT_LT(layout(8).block_bytes(), dense.block_bytes() / 3);
}

TEST(QuantizedPool, UnsupportedSettingsAreClearErrors) {
  for (auto [bits, gs] : {std::pair{7, 32}, {1, 32}, {4, 16}, {4, 256}}) {
    try {
      BlockPool pool(layout(bits, gs), 2);
      ADD_FAILURE() << bits << " " << gs;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
      EXPECT_NE(std::string(e.what()).find("kv_"), std::string::npos) << e.what();
    }
  }
  KvLayout l = layout(4, 128);  // 128 does not divide head_dim 64
  EXPECT_THROW(BlockPool(l, 2), Error);
}

TEST(QuantizedPool, CopyBlockCopiesEveryPlaneOfEveryLayer) {
  std::mt19937 rng(5);
  for (int bits : {0, 4, 8}) {
    SCOPED_TRACE(bits);
    auto pool = std::make_shared<BlockPool>(layout(bits), 4);
    KvCache cache(pool);
    append(cache, random_kv(4, pool->layout(), rng), random_kv(4, pool->layout(), rng));
    const int32_t from = cache.blocks()[0];
    const int32_t to = pool->allocate();
    ASSERT_NE(from, to);
    const Tensor first_plane = bits == 0 ? pool->keys(1) : pool->quantized_planes(1).v_biases;
    EXPECT_FALSE(same_bytes(first_plane.select(0, from), first_plane.select(0, to)));
    pool->copy_block(from, to);
    for (int l = 0; l < 2; ++l) {
      std::vector<Tensor> planes;
      if (bits == 0) {
        planes = {pool->keys(l), pool->values(l)};
      } else {
        ops::QuantizedKvPlanes p = pool->quantized_planes(l);
        planes = {p.k_packed, p.k_scales, p.k_biases, p.v_packed, p.v_scales, p.v_biases};
      }
      for (const Tensor& plane : planes) {
        EXPECT_TRUE(same_bytes(plane.select(0, from), plane.select(0, to)));
      }
    }
    pool->release(to);
  }
}

TEST(QuantizeCache, ConversionIsBitIdenticalToQuantizingOnWrite) {
  std::mt19937 rng(6);
  for (int bits : {4, 8}) {
    for (int gs : {32, 64}) {
      SCOPED_TRACE(testing::Message() << bits << "-bit gs " << gs);
      auto dense_pool = std::make_shared<BlockPool>(layout(0), 16);
      auto q_pool = std::make_shared<BlockPool>(layout(bits, gs), 16);
      KvCache dense(dense_pool), direct(q_pool);
      // Two appends (a prefill chunk and a step) ending mid-block.
      for (int64_t n : {9, 1}) {
        Tensor k = random_kv(n, dense_pool->layout(), rng);
        Tensor v = random_kv(n, dense_pool->layout(), rng);
        append(dense, k, v);
        append(direct, k, v);
      }
      std::shared_ptr<KvCache> converted = quantize_cache(dense, bits, gs);
      EXPECT_EQ(converted->size(), 10);
      EXPECT_EQ(dense.size(), 10);  // left as it was
      EXPECT_EQ(converted->pool().layout().kv_bits, bits);
      EXPECT_EQ(converted->pool().max_blocks(), dense_pool->max_blocks());
      for (int l = 0; l < 2; ++l)
        EXPECT_TRUE(
            same_state(read_quantized_layer(*converted, l), read_quantized_layer(direct, l)));
      EXPECT_EQ(converted->nbytes(), 3 * layout(bits, gs).block_bytes());
      EXPECT_THROW(quantize_cache(*converted, 4, 32), Error);  // already quantized
    }
  }
}

TEST(QuantizeCache, MaybeQuantizeFollowsMlxLmThreshold) {
  std::mt19937 rng(7);
  auto pool = std::make_shared<BlockPool>(layout(0), 16);
  auto cache = std::make_shared<KvCache>(pool);
  append(*cache, random_kv(5, pool->layout(), rng), random_kv(5, pool->layout(), rng));
  EXPECT_EQ(maybe_quantize_cache(cache, {0, 64, 0}), cache);  // kv_bits unset
  EXPECT_EQ(maybe_quantize_cache(cache, {8, 64, 6}), cache);  // 5 < start
  auto q = maybe_quantize_cache(cache, {8, 64, 5});           // offset >= start
  ASSERT_NE(q, cache);
  EXPECT_TRUE(q->pool().layout().quantized());
  EXPECT_EQ(maybe_quantize_cache(q, {4, 32, 0}), q);  // converted once, never again
}

TEST(QuantizeCache, LayerStatesRoundTripInTemporalOrder) {
  std::mt19937 rng(8);
  auto pool = std::make_shared<BlockPool>(layout(4, 32, DType::bf16), 16);
  KvCache cache(pool);
  Tensor k = random_kv(7, pool->layout(), rng), v = random_kv(7, pool->layout(), rng);
  append(cache, k, v);
  std::vector<QuantizedLayerState> states{read_quantized_layer(cache, 0),
                                          read_quantized_layer(cache, 1)};
  EXPECT_EQ(states[0].k_packed.shape(), Dims({1, 2, 7, 8}));
  EXPECT_EQ(states[1].v_scales.shape(), Dims({1, 2, 7, 2}));
  EXPECT_EQ(states[1].v_scales.dtype(), DType::bf16);
  // Token 5 of head 1 in the state is the token written at position 5: quantize it alone.
  {
    auto single = std::make_shared<BlockPool>(layout(4, 32, DType::bf16), 2);
    KvCache one(single);
    append(one, k.slice(0, 5, 6), v.slice(0, 5, 6));
    QuantizedLayerState s = read_quantized_layer(one, 0);
    EXPECT_EQ(std::memcmp(s.k_packed.select(2, 0).select(1, 1).raw_data(),
                          states[0].k_packed.select(2, 5).select(1, 1).raw_data(), 8 * 4),
              0);
  }
  auto restored = make_quantized_cache(pool->layout(), states, 10);
  EXPECT_EQ(restored->size(), 7);
  EXPECT_TRUE(same_state(read_quantized_layer(*restored, 0), states[0]));
  EXPECT_TRUE(same_state(read_quantized_layer(*restored, 1), states[1]));
  EXPECT_GE(restored->pool().max_blocks() * 4, 17);

  QuantizedLayerState bad = states[1];
  bad.v_biases = Tensor::zeros({1, 2, 7, 2}, DType::f32);
  try {
    write_quantized_layer(*restored, 1, bad);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("v_biases"), std::string::npos) << e.what();
  }
  KvCache dense(std::make_shared<BlockPool>(layout(0), 4));
  EXPECT_THROW(read_quantized_layer(dense, 0), Error);
}

}  // namespace
}  // namespace hearth::kv
