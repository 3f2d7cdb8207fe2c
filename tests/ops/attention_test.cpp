// write_kv and paged_attention against the reference: decode, prefill, chunked prefill and ragged
// batches mixing them; block sizes 16 and 32; head dims 64/80/96/128/256; MHA, GQA and MQA;
// sliding windows; f32/f16/bf16 caches; on CUDA both the split-KV kernel and the tiled prefill
// one. Block tables are shuffled, and cache rows that a sequence does not own (or has not filled)
// hold NaN, so reading them would poison the output.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <tuple>

#include "attention_test_util.h"
#include "op_test_util.h"
#include "ops/attention.h"
#include "ops/precision.h"
#include "ops/reference/reference.h"

namespace hearth::ops::testing {
namespace {

class AttentionTest : public OpTest {};

// Online softmax in f32 with the vectorized exp: observed ~3e-7.
constexpr double kTolerance = 5e-6;

using Case = AttentionCase;

struct Built {
  Tensor q, k_cache, v_cache;
  AttentionMeta meta;  // host tensors
};

Built build(const Case& c, Rng& rng) {
  Built b;
  PagedTables p = build_tables(c, rng);
  Dims cache_shape{p.num_blocks, c.n_kv, c.block_size, c.head_dim};
  b.k_cache = Tensor::empty(cache_shape, c.dtype);
  b.v_cache = Tensor::empty(cache_shape, c.dtype);
  poison(b.k_cache);
  poison(b.v_cache);
  for (int64_t s = 0; s < int64_t(c.seqs.size()); ++s)
    for (int64_t t = 0; t < c.seqs[size_t(s)].context; ++t)
      for (Tensor* cache : {&b.k_cache, &b.v_cache}) {
        Tensor rows = cache->select(0, p.block_of(s, t)).select(1, t % c.block_size);  // [n_kv, d]
        reference::copy(random_float({c.n_kv, c.head_dim}, c.dtype, rng), rows);
      }
  // Queries scaled up a little so some softmaxes are peaked.
  b.q = random_float_padded({p.tokens, c.n_heads, c.head_dim}, DType::f32, rng,
                            p.tokens % 2 ? 4 : 0, 3.0f);
  b.meta = p.meta;
  return b;
}

// Runs paged_attention on the device under test with `meta` and compares with the reference.
void check_against_reference(AttentionTest& t, const Built& b, const AttentionMeta& meta) {
  const float scale = 1.0f / std::sqrt(float(b.q.dim(2)));
  Tensor ref = Tensor::empty(b.q.shape(), DType::f32);
  reference::paged_attention(b.q, b.k_cache, b.v_cache, meta, scale, ref);
  Tensor out = Tensor::empty(b.q.shape(), DType::f32);
  poison(out);
  Tensor dout = t.to_dev(out);
  paged_attention(t.to_dev(b.q), t.to_dev(b.k_cache), t.to_dev(b.v_cache), meta_to_dev(t, meta),
                  scale, dout);
  t.fetch(dout, out);
  t.expect_close(out, ref, kTolerance);
}

void run_case(AttentionTest& t, const Case& c, Rng& rng) {
  SCOPED_TRACE(describe(c));
  Built b = build(c, rng);
  check_against_reference(t, b, b.meta);
}

const DType kCacheDtypes[] = {DType::f32, DType::f16, DType::bf16};

TEST_P(AttentionTest, DecodeAcrossHeadDimsAndGroups) {
  Rng rng(81);
  for (DType cache : kCacheDtypes)
    for (int64_t d : {64, 80, 96, 128, 256})
      for (auto [h, kv] : {std::pair<int64_t, int64_t>{4, 4}, {8, 2}, {6, 1}})
        for (int64_t ctx : {1, 17, 100})
          run_case(*this, {{{ctx, 1}}, h, kv, d, d == 80 ? 32 : 16, 0, cache}, rng);
}

TEST_P(AttentionTest, DecodeLongContextsAndBlockBoundaries) {
  Rng rng(82);
  for (DType cache : kCacheDtypes)
    for (int64_t bs : {16, 32})
      for (int64_t ctx : {15, 16, 31, 32, 33, 64, 65, 1000, 3001})
        run_case(*this, {{{ctx, 1}}, 8, 1, 64, bs, 0, cache}, rng);
}

TEST_P(AttentionTest, LongDecodeSplitsWithWindowsAndGroups) {
  // Long single-sequence decodes are split across threads and merged; windows move the first key.
  Rng rng(88);
  for (DType cache : kCacheDtypes) {
    run_case(*this, {{{3000, 1}}, 4, 1, 128, 16, 600, cache}, rng);
    run_case(*this, {{{2500, 1}}, 8, 2, 64, 32, 0, cache}, rng);
    run_case(*this, {{{1537, 1}, {700, 1}}, 2, 1, 80, 16, 1100, cache}, rng);
  }
}

TEST_P(AttentionTest, WideGroupsAndManyKeySplits) {
  // Query-head groups wider than the CUDA kernel's tile of 8 heads (12, 16 and 32 per kv head, as
  // MQA models have) and contexts long enough for many key splits there.
  Rng rng(89);
  for (DType cache : kCacheDtypes) {
    run_case(*this, {{{2000, 1}}, 32, 1, 64, 16, 0, cache}, rng);
    run_case(*this, {{{700, 1}, {5, 1}}, 16, 1, 128, 32, 300, cache}, rng);
    run_case(*this, {{{129, 3}}, 12, 1, 96, 16, 0, cache}, rng);
  }
}

TEST_P(AttentionTest, PrefillAndChunkedPrefill) {
  Rng rng(83);
  for (DType cache : kCacheDtypes) {
    for (int64_t bs : {16, 32}) {
      run_case(*this, {{{1, 1}}, 2, 1, 64, bs, 0, cache}, rng);
      run_case(*this, {{{17, 17}}, 4, 2, 64, bs, 0, cache}, rng);
      run_case(*this, {{{70, 70}}, 4, 4, 96, bs, 0, cache}, rng);
      run_case(*this, {{{90, 37}}, 8, 2, 128, bs, 0, cache}, rng);  // chunk after 53 cached
      run_case(*this, {{{48, 16}}, 2, 1, 256, bs, 0, cache}, rng);
      run_case(*this, {{{33, 2}}, 6, 3, 80, bs, 0, cache}, rng);  // speculative verify
    }
  }
}

TEST_P(AttentionTest, RaggedBatches) {
  Rng rng(84);
  for (DType cache : kCacheDtypes) {
    run_case(*this, {{{37, 37}, {100, 1}, {16, 5}, {33, 1}, {1, 1}}, 8, 2, 64, 16, 0, cache}, rng);
    run_case(*this, {{{5, 1}, {200, 1}, {64, 1}}, 4, 1, 128, 32, 0, cache}, rng);
    run_case(*this, {{{50, 20}, {19, 19}}, 4, 2, 80, 16, 0, cache}, rng);
  }
}

TEST_P(AttentionTest, SlidingWindows) {
  Rng rng(85);
  for (DType cache : kCacheDtypes) {
    for (int window : {1, 7, 16, 40}) {
      run_case(*this, {{{60, 60}}, 4, 2, 64, 16, window, cache}, rng);
      run_case(*this, {{{100, 1}, {35, 10}}, 4, 4, 64, 32, window, cache}, rng);
      run_case(*this, {{{300, 1}}, 8, 1, 128, 16, window, cache}, rng);
    }
  }
}

// Prefill shapes for the CUDA tiled kernel (flash_prefill.cu: calls with >= 16 query rows per
// sequence on average and head_dim <= 128, a multiple of 8; tiles of 64 query vectors = tokens x
// the heads of one kv head, 32 keys): one and several sequences, chunks of 1..700 rows after
// cached context, lengths off the tile and block sizes, GQA 1/4/8/12/32, head dims 64/128 and the
// padded 80/96. Few heads keep the scalar reference fast.
TEST_P(AttentionTest, TiledPrefillSequencesAndChunks) {
  Rng rng(91);
  for (DType cache : kCacheDtypes) {
    run_case(*this, {{{100, 100}}, 2, 2, 64, 16, 0, cache}, rng);  // MHA: 64 tokens a tile
    run_case(*this, {{{120, 50}, {40, 40}, {300, 20}, {30, 1}, {31, 31}}, 4, 1, 64, 16, 0, cache},
             rng);  // ragged batch of chunks, with a decode row
  }
  run_case(*this, {{{90, 90}}, 8, 1, 128, 16, 0, DType::f32}, rng);   // GQA 8: 8 tokens a tile
  run_case(*this, {{{400, 70}}, 4, 1, 64, 32, 0, DType::f16}, rng);   // chunk after 330 cached
  run_case(*this, {{{40, 40}}, 32, 1, 64, 16, 0, DType::f32}, rng);   // MQA 32: 2 tokens a tile
  run_case(*this, {{{80, 80}}, 12, 1, 64, 16, 0, DType::bf16}, rng);  // 5 tokens, 60 rows a tile
  run_case(*this, {{{129, 100}, {40, 17}}, 4, 2, 80, 32, 0, DType::f32}, rng);
  run_case(*this, {{{90, 90}, {45, 19}}, 6, 1, 96, 16, 0, DType::bf16}, rng);
  run_case(*this, {{{64, 64}, {128, 64}}, 4, 4, 128, 32, 0, DType::f16}, rng);  // whole tiles
  run_case(*this, {{{1, 1}, {16, 16}, {17, 17}, {33, 33}}, 4, 1, 64, 16, 0, DType::f32}, rng);
}

TEST_P(AttentionTest, TiledPrefillSlidingWindows) {
  // Windows narrower than a 32-key tile, near it, and wider; a 700-row chunk after 60 cached.
  Rng rng(92);
  for (int window : {1, 7, 33, 100}) {
    run_case(*this, {{{760, 700}}, 1, 1, 64, 16, window, DType::f32}, rng);
    run_case(*this, {{{200, 60}, {50, 50}}, 4, 1, 128, 32, window, DType::bf16}, rng);
  }
}

TEST_P(AttentionTest, TiledPrefillGqaGroups) {
  Rng rng(93);
  for (auto [h, kv, d] :
       {std::tuple<int64_t, int64_t, int64_t>{4, 4, 128}, {8, 2, 64}, {8, 1, 128}})
    run_case(*this, {{{100, 50}, {33, 33}}, h, kv, d, 16, 0, DType::f32}, rng);
}

// q, k and v rounded to bf16 (nearest even), back in their dtypes.
Built rounded_to_bf16(const Built& b) {
  auto round = [](const Tensor& t) {
    Tensor r16 = Tensor::empty(t.shape(), DType::bf16), r = Tensor::empty(t.shape(), t.dtype());
    reference::copy(t, r16);
    reference::copy(r16, r);
    return r;
  };
  Built r = b;
  r.q = round(b.q);
  r.k_cache = round(b.k_cache);
  r.v_cache = round(b.v_cache);
  return r;
}

// MatmulPrecision::bf16: on CUDA the tiled prefill runs on bf16 tensor cores (flash_prefill.cu)
// where head_dim is a multiple of 16: it equals the reference on q, k, v rounded to bf16 up to the
// rounding of the softmax weights to bf16 (relative 2^-9 each: ~1e-3 of the output scale here),
// and differs from the exact reference by more than f32 rounding (the path did run). Other
// calls, the CPU, and CUDA under HEARTH_CUDA_BF16_KERNELS=0 (ops/precision.h) stay exact.
// Windows, ragged chunks, GQA, positions, every cache dtype.
TEST_P(AttentionTest, TiledPrefillOnBf16TensorCores) {
  Rng rng(95);
  MatmulPrecisionScope scope(MatmulPrecision::bf16);
  const Case cases[] = {
      {{{100, 100}}, 2, 2, 64, 16, 0, DType::f32},
      {{{120, 50}, {40, 40}, {300, 20}, {30, 1}, {31, 31}}, 4, 1, 64, 16, 0, DType::bf16},
      {{{90, 90}}, 8, 1, 128, 16, 0, DType::f16},
      {{{129, 100}, {40, 17}}, 4, 2, 80, 32, 0, DType::f32},
      {{{90, 90}, {45, 19}}, 6, 1, 96, 16, 0, DType::bf16},
      {{{200, 60}, {50, 50}}, 4, 1, 128, 32, 33, DType::bf16},
      {{{760, 700}}, 1, 1, 64, 16, 7, DType::f32},
  };
  for (const Case& c : cases)
    for (bool by_positions : {false, true}) {
      SCOPED_TRACE(describe(c) + (by_positions ? " by position" : ""));
      Built b = build(c, rng);
      AttentionMeta meta = b.meta;
      if (by_positions) set_shuffled_positions(c, meta, rng);
      const float scale = 1.0f / std::sqrt(float(b.q.dim(2)));
      Tensor exact = Tensor::empty(b.q.shape(), DType::f32);
      reference::paged_attention(b.q, b.k_cache, b.v_cache, meta, scale, exact);
      const Built r = rounded_to_bf16(b);
      Tensor ref = Tensor::empty(b.q.shape(), DType::f32);
      reference::paged_attention(r.q, r.k_cache, r.v_cache, meta, scale, ref);
      Tensor out = Tensor::empty(b.q.shape(), DType::f32);
      Tensor dout = to_dev(out);
      paged_attention(to_dev(b.q), to_dev(b.k_cache), to_dev(b.v_cache), meta_to_dev(*this, meta),
                      scale, dout);
      fetch(dout, out);
      if (device().is_cpu() || !cuda_bf16_kernels_enabled()) {
        expect_close(out, exact, kTolerance);
        continue;
      }
      expect_close(out, ref, 8e-3);
      EXPECT_GT(normalized_error(out, exact), 1e-5);
    }
}

// bf16 caches with head_dim 64 or 128 take the cp.async kernel (flash_prefill.cu), which runs the
// staged tensor-core kernel's mma sequence: both must give the same bits.
TEST_P(AttentionTest, AsyncPrefillTilesEqualTheStagedKernel) {
  if (device().is_cpu()) GTEST_SKIP() << "compares two CUDA kernels";
  Rng rng(96);
  MatmulPrecisionScope scope(MatmulPrecision::bf16);
  const Case cases[] = {
      {{{120, 50}, {40, 40}, {300, 20}, {30, 1}, {31, 31}}, 4, 1, 64, 16, 0, DType::bf16},
      {{{200, 60}, {50, 50}}, 4, 1, 128, 32, 33, DType::bf16},
      {{{333, 333}}, 8, 2, 128, 16, 0, DType::bf16},
  };
  // The async kernel at 64 rows a block, the staged kernel, the async kernel at 128 rows.
  const std::pair<const char*, const char*> variants[3] = {{"HEARTH_CUDA_FLASH_ROWS", "64"},
                                                           {"HEARTH_CUDA_FLASH_ASYNC", "0"},
                                                           {"HEARTH_CUDA_FLASH_ROWS", "128"}};
  for (const Case& c : cases) {
    SCOPED_TRACE(describe(c));
    Built b = build(c, rng);
    const float scale = 1.0f / std::sqrt(float(b.q.dim(2)));
    Tensor outs[3];
    for (int v = 0; v < 3; ++v) {
      setenv(variants[v].first, variants[v].second, 1);
      Tensor dout = to_dev(Tensor::empty(b.q.shape(), DType::f32));
      paged_attention(to_dev(b.q), to_dev(b.k_cache), to_dev(b.v_cache), meta_to_dev(*this, b.meta),
                      scale, dout);
      outs[v] = Tensor::empty(b.q.shape(), DType::f32);
      fetch(dout, outs[v]);
      unsetenv(variants[v].first);
    }
    const std::vector<float> a = outs[0].to_vector<float>();
    for (int v = 1; v < 3; ++v) {
      SCOPED_TRACE(variants[v].first);
      const std::vector<float> o = outs[v].to_vector<float>();
      ASSERT_EQ(a.size(), o.size());
      // 128-row blocks start a window's first tile at another slot (their first query's window),
      // which regroups the online softmax's steps: equal within bf16 P rounding, not in bits.
      if (v == 2 && c.window > 0)
        EXPECT_LT(normalized_error(outs[v], outs[0]), 2e-3);
      else
        EXPECT_EQ(0, std::memcmp(a.data(), o.data(), a.size() * sizeof(float)));
    }
  }
}

// AttentionMeta positions (a wrapped rotating cache): the mask follows the positions.
void run_positions_case(AttentionTest& t, const Case& c, Rng& rng) {
  SCOPED_TRACE(describe(c) + " by position");
  Built b = build(c, rng);
  AttentionMeta meta = b.meta;
  set_shuffled_positions(c, meta, rng);
  check_against_reference(t, b, meta);
}

TEST_P(AttentionTest, PositionsMaskShuffledRingSlots) {
  Rng rng(89);
  for (DType cache : kCacheDtypes) {
    for (int window : {0, 1, 5, 16}) {
      run_positions_case(*this, {{{9, 1}}, 4, 2, 64, 16, window, cache}, rng);
      run_positions_case(*this, {{{40, 1}, {7, 1}}, 8, 2, 128, 16, window, cache}, rng);
      run_positions_case(*this, {{{600, 1}}, 4, 1, 64, 32, window, cache}, rng);  // split decode
      run_positions_case(*this, {{{30, 12}, {20, 1}}, 4, 4, 80, 16, window, cache}, rng);
    }
  }
}

TEST_P(AttentionTest, TiledPrefillByPositions) {
  // Prefill chunks over a rotating cache: the tiled kernel visits every slot and masks by position.
  Rng rng(94);
  for (int window : {0, 5, 40}) {
    run_positions_case(*this, {{{200, 100}}, 4, 1, 64, 16, window, DType::f32}, rng);
    run_positions_case(*this, {{{150, 64}, {50, 50}}, 4, 1, 128, 32, window, DType::bf16}, rng);
  }
}

TEST_P(AttentionTest, PositionsBySlotOrderEqualTheSlotOrderMask) {
  // Positions equal to the slot indices give the plain causal(+window) mask: both paths agree with
  // the reference of the plain mask.
  Rng rng(90);
  for (int window : {0, 4}) {
    Case c{{{50, 10}, {33, 1}}, 4, 2, 64, 16, window, DType::f32};
    Built b = build(c, rng);
    const AttentionMeta& meta = b.meta;
    float scale = 0.125f;
    Tensor ref = Tensor::empty(b.q.shape(), DType::f32);
    reference::paged_attention(b.q, b.k_cache, b.v_cache, meta, scale, ref);
    std::vector<int32_t> kpos(100, -1), qpos;
    for (int j = 0; j < 50; ++j) kpos[size_t(j)] = j;
    for (int j = 0; j < 33; ++j) kpos[size_t(50 + j)] = j;
    for (int i = 0; i < 10; ++i) qpos.push_back(40 + i);
    qpos.push_back(32);
    AttentionMeta dmeta = meta;
    dmeta.key_positions = Tensor::from_vector(kpos, {2, 50});
    dmeta.query_positions = Tensor::from_vector(qpos, {11});
    dmeta = meta_to_dev(*this, dmeta);
    Tensor out = Tensor::empty(b.q.shape(), DType::f32);
    Tensor dout = to_dev(out);
    paged_attention(to_dev(b.q), to_dev(b.k_cache), to_dev(b.v_cache), dmeta, scale, dout);
    fetch(dout, out);
    expect_close(out, ref, kTolerance);
  }
}

TEST_P(AttentionTest, WriteKvConvertsAndSkipsPadding) {
  Rng rng(86);
  for (DType src : {DType::f32, DType::bf16}) {
    for (DType cache : kCacheDtypes) {
      SCOPED_TRACE(fmt::format("k/v {} cache {}", dtype_name(src), dtype_name(cache)));
      const int64_t blocks = 5, kv = 3, bs = 16, d = 80, tokens = 9;
      Tensor kc = Tensor::empty({blocks, kv, bs, d}, cache), vc = Tensor::empty(kc.shape(), cache);
      poison(kc);
      poison(vc);
      Tensor k = random_float_padded({tokens, kv, d}, src, rng, 5);
      Tensor v = random_float({tokens, kv, d}, src, rng);
      std::vector<int32_t> slots = {0, 17, 79, 40, -1, 41, 15, 16, 63};
      Tensor ts = Tensor::from_vector(slots, {tokens});
      Tensor rk = Tensor::empty(kc.shape(), cache), rv = Tensor::empty(vc.shape(), cache);
      poison(rk);
      poison(rv);
      reference::write_kv(k, v, ts, rk, rv);
      Tensor dk = to_dev(kc), dv = to_dev(vc);
      write_kv(to_dev(k), to_dev(v), to_dev(ts), dk, dv);
      fetch(dk, kc);
      fetch(dv, vc);
      // Exactly the 8 written slots changed; everything else still holds the poison.
      EXPECT_EQ(count_poison(kc), (blocks * bs - 8) * kv * d);
      EXPECT_EQ(count_poison(vc), (blocks * bs - 8) * kv * d);
      EXPECT_EQ(values_of(kc).size(), values_of(rk).size());
      std::vector<double> a = values_of(kc), r = values_of(rk), av = values_of(vc),
                          rv2 = values_of(rv);
      int mismatches = 0;
      for (size_t i = 0; i < a.size(); ++i) {
        mismatches += !(a[i] == r[i] || (std::isnan(a[i]) && std::isnan(r[i])));
        mismatches += !(av[i] == rv2[i] || (std::isnan(av[i]) && std::isnan(rv2[i])));
      }
      EXPECT_EQ(mismatches, 0);
    }
  }
}

TEST_P(AttentionTest, BadMetadataIsAnError) {
  if (!device().is_cpu()) GTEST_SKIP() << "metadata values are checked on the host only";
  Rng rng(87);
  Case c{{{20, 20}}, 2, 1, 64, 16, 0, DType::f32};
  Built b = build(c, rng);
  AttentionMeta meta = b.meta;
  Tensor out = Tensor::empty(b.q.shape(), DType::f32);
  auto expect_error = [&](const char* what) {
    try {
      paged_attention(b.q, b.k_cache, b.v_cache, meta, 0.125f, out);
      ADD_FAILURE() << "no error for " << what;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::invalid_argument) << what;
    }
  };
  meta.context_lens = Tensor::from_vector(std::vector<int32_t>{19}, {1});  // fewer than queries
  expect_error("context shorter than the queries");
  meta.context_lens = Tensor::from_vector(std::vector<int32_t>{200}, {1});  // past the table
  expect_error("context longer than the block table");
  meta.context_lens = b.meta.context_lens;
  meta.block_tables = Tensor::from_vector(std::vector<int32_t>{0, 99, 0}, {1, 3});
  expect_error("block id past the cache");
  meta.block_tables = b.meta.block_tables;
  meta.query_start = Tensor::from_vector(std::vector<int32_t>{0, 19}, {2});
  expect_error("query_start not covering q");
  meta.query_start = b.meta.query_start;
  meta.max_context_len = 20;
  meta.key_positions = Tensor::from_vector(std::vector<int32_t>(20, 0), {1, 20});
  expect_error("key_positions without query_positions");
  meta.query_positions = Tensor::from_vector(std::vector<int32_t>(19, 0), {19});
  expect_error("query_positions not one per query row");
  meta.query_positions = Tensor::from_vector(std::vector<int32_t>(20, 0), {20});
  meta.key_positions = Tensor::from_vector(std::vector<int32_t>(10, 0), {1, 10});
  expect_error("key_positions shorter than the context");
}

HEARTH_OP_TEST_ON_ALL_DEVICES(AttentionTest);

}  // namespace
}  // namespace hearth::ops::testing
