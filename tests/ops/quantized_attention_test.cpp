// write_kv_quantized and paged_attention_quantized against the references: quantize-on-write is
// bit-identical to MLX's GPU quantizer of each token's head vector (reference::affine_quantize,
// itself checked against MLX's algorithm in quantize_mlx_test), and the fused attention matches
// dequantize-then-attend (reference::affine_dequantize into f32, then reference::paged_attention)
// to f32 rounding. Shapes: decode, prefill, chunked prefill, ragged batches, GQA/MQA, sliding
// windows, multi-block contexts, bits 2-8, group sizes 32/64/128, f32/f16/bf16 scales. Block
// tables are shuffled and rows a sequence does not own hold NaN scales.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "attention_test_util.h"
#include "op_test_util.h"
#include "ops/quantized_attention.h"
#include "ops/reference/reference.h"

namespace hearth::ops::testing {
namespace {

class QuantizedAttentionTest : public OpTest {};

// The fused CPU kernel sums scale * (q . codes) and bias * sum(q) per group, which can cancel
// (a group far from 0 has a large bias) and lose a few more f32 bits than the dense kernel;
// observed up to ~2e-6 (dense attention: ~3e-7).
constexpr double kTolerance = 1e-5;

using Case = AttentionCase;

QuantizedKvPlanes empty_planes(int64_t blocks, int64_t n_kv, int64_t bs, int64_t d, int bits,
                               int gs, DType dtype) {
  QuantizedKvPlanes p;
  p.bits = bits;
  p.group_size = gs;
  for (int kv = 0; kv < 2; ++kv) {
    Tensor packed = Tensor::empty({blocks, n_kv, bs, d * bits / 32}, DType::u32);
    Tensor scales = Tensor::empty({blocks, n_kv, bs, d / gs}, dtype);
    Tensor biases = Tensor::empty({blocks, n_kv, bs, d / gs}, dtype);
    poison(packed);
    poison(scales);
    poison(biases);
    (kv == 0 ? p.k_packed : p.v_packed) = packed;
    (kv == 0 ? p.k_scales : p.v_scales) = scales;
    (kv == 0 ? p.k_biases : p.v_biases) = biases;
  }
  return p;
}

// Head vectors with a per-token offset, so groups are often all-positive or all-negative (the
// cases where MLX's GPU quantizer differs from its CPU one) and biases matter.
Tensor random_kv(int64_t tokens, int64_t n_kv, int64_t d, Rng& rng) {
  Tensor t = random_float({tokens, n_kv, d}, DType::f32, rng, 2.0f);
  float* p = t.data<float>();
  for (int64_t r = 0; r < tokens * n_kv; ++r) {
    const float offset = rng.uniform(-3.0f, 3.0f);
    for (int64_t c = 0; c < d; ++c) p[r * d + c] += offset;
  }
  return t;
}

QuantizedKvPlanes planes_to_dev(const OpTest& t, const QuantizedKvPlanes& h) {
  QuantizedKvPlanes d = h;
  d.k_packed = t.to_dev(h.k_packed);
  d.k_scales = t.to_dev(h.k_scales);
  d.k_biases = t.to_dev(h.k_biases);
  d.v_packed = t.to_dev(h.v_packed);
  d.v_scales = t.to_dev(h.v_scales);
  d.v_biases = t.to_dev(h.v_biases);
  return d;
}

void run_case(QuantizedAttentionTest& t, const Case& c, Rng& rng) {
  SCOPED_TRACE(describe(c));
  PagedTables p = build_tables(c, rng);
  QuantizedKvPlanes cache =
      empty_planes(p.num_blocks, c.n_kv, c.block_size, c.head_dim, c.bits, c.group_size, c.dtype);
  for (int64_t s = 0; s < int64_t(c.seqs.size()); ++s) {
    const int64_t context = c.seqs[size_t(s)].context;
    std::vector<int32_t> slots(static_cast<size_t>(context));
    for (int64_t tok = 0; tok < context; ++tok) slots[size_t(tok)] = p.slot_of(s, tok);
    // The host CPU op fills the cache (its bits are checked against the reference below).
    write_kv_quantized(random_kv(context, c.n_kv, c.head_dim, rng),
                       random_kv(context, c.n_kv, c.head_dim, rng),
                       Tensor::from_vector(slots, {context}), cache);
  }
  Tensor q = random_float_padded({p.tokens, c.n_heads, c.head_dim}, DType::f32, rng,
                                 p.tokens % 2 ? 4 : 0, 3.0f);
  const float scale = 1.0f / std::sqrt(float(c.head_dim));
  Tensor ref = Tensor::empty(q.shape(), DType::f32);
  reference::paged_attention_quantized(q, cache, p.meta, scale, ref);

  Tensor out = Tensor::empty(q.shape(), DType::f32);
  poison(out);
  Tensor dout = t.to_dev(out);
  paged_attention_quantized(t.to_dev(q), planes_to_dev(t, cache), meta_to_dev(t, p.meta), scale,
                            dout);
  t.fetch(dout, out);
  t.expect_close(out, ref, kTolerance);
}

const DType kDtypes[] = {DType::f32, DType::f16, DType::bf16};

TEST_P(QuantizedAttentionTest, DecodeAcrossBitsGroupsAndHeads) {
  Rng rng(91);
  for (int bits : {4, 8})
    for (int gs : {32, 64, 128})
      for (int64_t d : {64, 128})
        for (auto [h, kv] : {std::pair<int64_t, int64_t>{4, 4}, {8, 2}, {6, 1}}) {
          if (d % gs) continue;
          run_case(*this, {{{37, 1}}, h, kv, d, 16, 0, DType::f32, bits, gs}, rng);
        }
}

TEST_P(QuantizedAttentionTest, OtherBitWidthsAndScaleDtypes) {
  Rng rng(92);
  for (DType dtype : kDtypes)
    for (int bits : {2, 3, 4, 5, 6, 8})
      run_case(*this, {{{50, 1}, {21, 5}}, 4, 2, 96, 16, 0, dtype, bits, 32}, rng);
}

TEST_P(QuantizedAttentionTest, LongContextsAcrossBlocks) {
  Rng rng(93);
  for (int bits : {4, 8})
    for (int64_t bs : {16, 32})
      for (int64_t ctx : {15, 16, 33, 1000, 2049})
        run_case(*this, {{{ctx, 1}}, 8, 2, 128, bs, 0, DType::bf16, bits, 64}, rng);
}

TEST_P(QuantizedAttentionTest, PrefillChunksAndRaggedBatches) {
  Rng rng(94);
  for (int bits : {4, 8}) {
    run_case(*this, {{{70, 70}}, 4, 4, 64, 16, 0, DType::f32, bits, 64}, rng);
    run_case(*this, {{{90, 37}}, 8, 2, 128, 32, 0, DType::f16, bits, 32}, rng);
    run_case(*this, {{{33, 2}}, 6, 3, 64, 16, 0, DType::f32, bits, 64}, rng);
    run_case(
        *this,
        {{{37, 37}, {100, 1}, {16, 5}, {33, 1}, {1, 1}}, 8, 2, 64, 16, 0, DType::bf16, bits, 64},
        rng);
  }
}

TEST_P(QuantizedAttentionTest, SlidingWindows) {
  Rng rng(95);
  for (int bits : {4, 8})
    for (int window : {1, 7, 40}) {
      run_case(*this, {{{60, 60}}, 4, 2, 64, 16, window, DType::f32, bits, 64}, rng);
      run_case(*this, {{{300, 1}, {35, 10}}, 8, 1, 128, 16, window, DType::f32, bits, 128}, rng);
    }
}

// The CUDA kernel's paths (the CPU runs the same cases against the same reference): key splits
// (long contexts: a batch-1 decode is split into slices of >= 256 keys merged by the combine
// kernel), tiles of up to 8 query vectors (GQA heads x prefill rows, rows of a tile that belong to
// different sequences), the 16-byte-load decoders of 4 and 8 bits at head_dim 64/128/256 (256: the
// value rows' 8-byte lane loads) and the code-by-code decoder (other widths, head_dim 32 and 96).
// Contexts are not multiples of the block size.

TEST_P(QuantizedAttentionTest, LongDecodeSplitsAcrossGqaRatios) {
  Rng rng(101);
  for (int bits : {8, 4})
    run_case(*this, {{{3001, 1}}, 8, 2, 128, 16, 0, DType::bf16, bits, 64}, rng);
  for (int bits : {8, 4, 3})
    for (auto [h, kv] : {std::pair<int64_t, int64_t>{4, 4}, {16, 2}})
      run_case(*this, {{{1100, 1}}, h, kv, 64, 16, 0, DType::bf16, bits, 64}, rng);
  // A decode batch (one row per sequence) of long and short contexts, MQA with 12 heads (two
  // head tiles of 8 and 4), a sliding window crossing split boundaries.
  run_case(*this, {{{1500, 1}, {7, 1}, {900, 1}}, 12, 1, 128, 32, 0, DType::f16, 8, 128}, rng);
  run_case(*this, {{{1900, 1}}, 8, 2, 128, 16, 700, DType::f32, 4, 32}, rng);
}

TEST_P(QuantizedAttentionTest, PrefillRowTilesAndRaggedBatches) {
  Rng rng(102);
  for (int bits : {8, 4, 6}) {
    // GQA 1, 2, 4 and 8 give tiles of 8 rows x 1 head, 4 x 2, 2 x 4 and 1 x 8.
    run_case(*this, {{{300, 40}}, 4, 4, 64, 16, 0, DType::bf16, bits, 64}, rng);
    run_case(*this, {{{333, 21}}, 4, 2, 128, 16, 0, DType::f32, bits, 32}, rng);
    run_case(*this, {{{700, 11}}, 8, 2, 128, 32, 100, DType::f16, bits, 128}, rng);
    run_case(*this, {{{290, 13}}, 16, 2, 64, 16, 0, DType::f32, bits, 64}, rng);
    // Row tiles straddling sequences: query lengths 3, 1, 5, 2, 9 against tiles of 8 and 2 rows.
    const std::vector<SeqSpec> ragged{{40, 3}, {600, 1}, {77, 5}, {2, 2}, {100, 9}};
    run_case(*this, {ragged, 2, 2, 128, 16, 0, DType::bf16, bits, 64}, rng);
    run_case(*this, {ragged, 8, 2, 64, 32, 30, DType::f32, bits, 32}, rng);
  }
}

TEST_P(QuantizedAttentionTest, AllWidthsGroupsAndHeadDims) {
  Rng rng(103);
  for (int bits : {2, 3, 4, 5, 6, 8})
    for (int gs : {32, 64, 128})
      for (int64_t d : {64, 128, 256}) {
        if (d % gs || (d == 256 && bits != 4 && bits != 8)) continue;
        run_case(*this, {{{150, 1}, {45, 7}}, 8, 2, d, 16, 0, DType::bf16, bits, gs}, rng);
      }
  // Head dims whose per-lane share of a row is not a power of two, or one value.
  for (int bits : {4, 8}) {
    run_case(*this, {{{300, 1}, {60, 11}}, 4, 1, 96, 16, 0, DType::f32, bits, 32}, rng);
    run_case(*this, {{{300, 1}, {60, 11}}, 4, 2, 32, 16, 0, DType::f32, bits, 32}, rng);
  }
}

TEST_P(QuantizedAttentionTest, WriteIsBitIdenticalToTheMlxQuantizer) {
  Rng rng(96);
  for (DType src : {DType::f32, DType::bf16})
    for (DType dtype : kDtypes)
      for (int bits : {3, 4, 8}) {
        SCOPED_TRACE(
            fmt::format("k/v {} scales {} bits {}", dtype_name(src), dtype_name(dtype), bits));
        const int64_t blocks = 5, kv = 3, bs = 16, d = 64, tokens = 9;
        std::vector<int32_t> slots = {0, 17, 79, 40, -1, 41, 15, 16, 63};
        Tensor ts = Tensor::from_vector(slots, {tokens});
        Tensor k = Tensor::empty({tokens, kv, d}, src), v = Tensor::empty({tokens, kv, d}, src);
        reference::copy(random_kv(tokens, kv, d, rng), k);
        reference::copy(random_kv(tokens, kv, d, rng), v);
        QuantizedKvPlanes ref = empty_planes(blocks, kv, bs, d, bits, 32, dtype);
        reference::write_kv_quantized(k, v, ts, ref);
        QuantizedKvPlanes host = empty_planes(blocks, kv, bs, d, bits, 32, dtype);
        QuantizedKvPlanes dev = planes_to_dev(*this, host);
        write_kv_quantized(to_dev(k), to_dev(v), to_dev(ts), dev);
        const Tensor* got[] = {&dev.k_packed, &dev.k_scales, &dev.k_biases,
                               &dev.v_packed, &dev.v_scales, &dev.v_biases};
        const Tensor* want[] = {&ref.k_packed, &ref.k_scales, &ref.k_biases,
                                &ref.v_packed, &ref.v_scales, &ref.v_biases};
        const Tensor* into[] = {&host.k_packed, &host.k_scales, &host.k_biases,
                                &host.v_packed, &host.v_scales, &host.v_biases};
        for (int i = 0; i < 6; ++i) {
          fetch(*got[i], *into[i]);
          // Exactly the 8 written slots changed, byte for byte as the reference wrote them.
          EXPECT_EQ(count_poison(*into[i]), (blocks * bs - 8) * kv * into[i]->dim(3)) << i;
          EXPECT_EQ(std::memcmp(into[i]->raw_data(), want[i]->raw_data(), into[i]->nbytes()), 0)
              << "plane " << i;
        }
      }
}

TEST_P(QuantizedAttentionTest, BadArgumentsAreErrors) {
  Rng rng(97);
  QuantizedKvPlanes host = empty_planes(4, 2, 16, 64, 4, 64, DType::f32);
  Tensor q = random_float({3, 4, 64}, DType::f32, rng);
  Tensor out = Tensor::empty({3, 4, 64}, DType::f32);
  AttentionMeta meta;
  meta.query_start = Tensor::from_vector(std::vector<int32_t>{0, 3}, {2});
  meta.context_lens = Tensor::from_vector(std::vector<int32_t>{3}, {1});
  meta.block_tables = Tensor::from_vector(std::vector<int32_t>{0}, {1, 1});
  auto expect_error = [&](const char* what, auto&& fn) {
    try {
      fn();
      ADD_FAILURE() << "no error for " << what;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::invalid_argument) << what << ": " << e.what();
    }
  };
  QuantizedKvPlanes bad = host;
  bad.bits = 7;
  expect_error("7 bits", [&] { paged_attention_quantized(q, bad, meta, 0.1f, out); });
  bad = host;
  bad.group_size = 48;
  expect_error("group 48", [&] { paged_attention_quantized(q, bad, meta, 0.1f, out); });
  bad = host;
  bad.v_scales = Tensor::empty({4, 2, 16, 1}, DType::bf16);
  expect_error("value scale dtype", [&] { paged_attention_quantized(q, bad, meta, 0.1f, out); });
  bad = host;
  bad.k_biases = Tensor::empty({4, 2, 16, 2}, DType::f32);
  expect_error("bias shape", [&] { paged_attention_quantized(q, bad, meta, 0.1f, out); });
  Tensor q80 = random_float({3, 4, 96}, DType::f32, rng);
  Tensor out80 = Tensor::empty({3, 4, 96}, DType::f32);
  expect_error("head_dim", [&] { paged_attention_quantized(q80, host, meta, 0.1f, out80); });
  Tensor q3 = random_float({3, 3, 64}, DType::f32, rng);
  Tensor out3 = Tensor::empty({3, 3, 64}, DType::f32);
  expect_error("GQA ratio", [&] { paged_attention_quantized(q3, host, meta, 0.1f, out3); });
  expect_error("check_kv_quantization", [] { check_kv_quantization("kv", 4, 128, 64); });
  Tensor k = random_float({2, 2, 64}, DType::f32, rng);
  expect_error("slot past the cache", [&] {
    write_kv_quantized(k, k, Tensor::from_vector(std::vector<int32_t>{0, 64}, {2}), host);
  });
  {
    AttentionMeta rotating = meta;
    rotating.key_positions = Tensor::from_vector(std::vector<int32_t>{0, 1, 2}, {1, 3});
    rotating.query_positions = Tensor::from_vector(std::vector<int32_t>{0, 1, 2}, {3});
    try {
      paged_attention_quantized(q, host, rotating, 0.1f, out);
      ADD_FAILURE() << "no error for a rotating meta";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::unsupported) << e.what();
    }
  }
  if (device().is_cpu()) {
    meta.context_lens = Tensor::from_vector(std::vector<int32_t>{40}, {1});
    expect_error("context past the table",
                 [&] { paged_attention_quantized(q, host, meta, 0.1f, out); });
  }
}

HEARTH_OP_TEST_ON_ALL_DEVICES(QuantizedAttentionTest);

}  // namespace
}  // namespace hearth::ops::testing
