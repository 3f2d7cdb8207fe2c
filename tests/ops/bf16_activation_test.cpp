// The decoder's ops with bf16 activations (ops/validate.h's check_activation): inputs widen
// exactly, arithmetic is f32 and each bf16 output is rounded once. Against the reference run in f32
// on the same (bf16-valued) inputs, whose result rounded to bf16 is the best a bf16 output can
// be; the fused ops also against their unfused sequence on the same device, bit for bit. Decode
// (1-8 rows) and prefill (40+ rows) shapes, so the CUDA GEMV and GEMM paths both run.
#include <fmt/format.h>

#include <cmath>

#include "attention_test_util.h"
#include "op_test_util.h"
#include "ops/attention.h"
#include "ops/copy.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/norm.h"
#include "ops/quantized.h"
#include "ops/reference/reference.h"
#include "ops/rope.h"

namespace hearth::ops::testing {
namespace {

// One bf16 rounding of each output element (relative 2^-9 at most, ~2^-10 on average in the
// norm), plus f32 differences in sums that may tip a rounding: observed ~1.7e-3 (CPU).
constexpr double kTolerance = 4e-3;

class Bf16ActivationTest : public OpTest {
 public:
  // A device tensor of t's values in dtype (a fresh buffer, never t itself).
  Tensor dev_as(const Tensor& t, DType dtype) const {
    Tensor h = Tensor::empty(t.shape(), dtype);
    copy(t, h);
    Tensor d = Tensor::empty(t.shape(), dtype, device());
    copy(h, d);
    return d;
  }
  // A poisoned device tensor.
  Tensor dev_empty(const Dims& shape, DType dtype) const {
    Tensor h = Tensor::empty(shape, dtype);
    poison(h);
    return to_dev(h);
  }
  // A device result as f32 host values.
  Tensor host_f32(const Tensor& dev) const {
    Tensor h = Tensor::empty(dev.shape(), dev.dtype());
    fetch(dev, h);
    Tensor f = Tensor::empty(dev.shape(), DType::f32);
    copy(h, f);
    return f;
  }
  // Two device tensors hold the same bits' values (fused against unfused).
  void expect_identical(const Tensor& a, const Tensor& b) {
    expect_close(host_f32(a), host_f32(b), 0.0);
  }
};

// Random values rounded to bf16, held in f32 (exact inputs for the reference).
Tensor bf16_valued(const Dims& shape, Rng& rng, float scale = 1.0f) {
  Tensor b = random_float(shape, DType::bf16, rng, scale);
  Tensor f = Tensor::empty(shape, DType::f32);
  copy(b, f);
  return f;
}

const int64_t kRows[] = {1, 3, 8, 41};

TEST_P(Bf16ActivationTest, RmsNormAndAddRmsNorm) {
  Rng rng(501);
  for (int64_t m : kRows) {
    SCOPED_TRACE(fmt::format("m={}", m));
    const int64_t h = 1024 + 64;
    Tensor x = random_float({m, h}, DType::f32, rng, 3.0f);
    Tensor w = random_float({h}, DType::bf16, rng);
    Tensor delta = bf16_valued({m, h}, rng, 2.0f);
    // rms_norm: f32 residual in, bf16 out; then bf16 in place (the q/k norms).
    Tensor ref = Tensor::empty({m, h}, DType::f32);
    reference::rms_norm(x, w, 1e-5f, ref);
    Tensor out = dev_empty({m, h}, DType::bf16);
    rms_norm(dev_as(x, DType::f32), to_dev(w), 1e-5f, out);
    expect_close(host_f32(out), ref, kTolerance);
    Tensor xb = dev_as(delta, DType::bf16);
    reference::rms_norm(delta, w, 1e-5f, ref);
    rms_norm(xb, to_dev(w), 1e-5f, xb);
    expect_close(host_f32(xb), ref, kTolerance);
    // add_rms_norm: f32 residual += bf16 delta (exact widening: the same f32 sum as the
    // reference), normed into the delta's own bf16 buffer.
    Tensor rx = Tensor::empty({m, h}, DType::f32);
    copy(x, rx);
    Tensor rnormed = Tensor::empty({m, h}, DType::f32);
    reference::add_rms_norm(rx, delta, w, 1e-5f, rnormed);
    Tensor dx = dev_as(x, DType::f32), dd = dev_as(delta, DType::bf16);
    add_rms_norm(dx, dd, to_dev(w), 1e-5f, dd);
    expect_close(host_f32(dx), rx, 0.0);
    expect_close(host_f32(dd), rnormed, kTolerance);
    // ... and equal to add then rms_norm on the same device.
    Tensor ux = dev_as(x, DType::f32), ud = dev_as(delta, DType::bf16);
    add(ux, ud, ux);
    rms_norm(ux, to_dev(w), 1e-5f, ud);
    expect_identical(dd, ud);
  }
}

TEST_P(Bf16ActivationTest, SiluMulAndAdd) {
  Rng rng(502);
  for (int64_t m : kRows) {
    SCOPED_TRACE(fmt::format("m={}", m));
    const int64_t n = 3000;
    Tensor gate = bf16_valued({m, n}, rng, 4.0f), up = bf16_valued({m, n}, rng, 2.0f);
    Tensor ref = Tensor::empty({m, n}, DType::f32);
    reference::silu_mul(gate, up, ref);
    Tensor dg = dev_as(gate, DType::bf16);
    silu_mul(dg, dev_as(up, DType::bf16), dg);  // in place, all bf16
    expect_close(host_f32(dg), ref, kTolerance);
    Tensor out = dev_empty({m, n}, DType::bf16);  // f32 products, bf16 out
    silu_mul(dev_as(gate, DType::f32), dev_as(up, DType::f32), out);
    expect_close(host_f32(out), ref, kTolerance);
    // add: the f32 residual plus a bf16 delta is the exact f32 sum.
    Tensor a = random_float({m, n}, DType::f32, rng);
    reference::add(a, up, ref);
    Tensor da = dev_as(a, DType::f32);
    add(da, dev_as(up, DType::bf16), da);
    expect_close(host_f32(da), ref, 0.0);
  }
}

TEST_P(Bf16ActivationTest, MatmulPlainGroupedAndSiluMul) {
  Rng rng(503);
  for (DType wd : {DType::bf16, DType::f32}) {
    for (int64_t m : kRows) {
      SCOPED_TRACE(fmt::format("w={} m={}", dtype_name(wd), m));
      const int64_t k = 512, n = 384;
      Tensor x = bf16_valued({m, k}, rng);
      Tensor w1 = random_float({n, k}, wd, rng), w2 = random_float({n, k}, wd, rng);
      Tensor bias = random_float({n}, DType::bf16, rng);
      Tensor ref1 = Tensor::empty({m, n}, DType::f32), ref2 = Tensor::empty({m, n}, DType::f32);
      reference::matmul(x, w1, ref1, &bias);
      reference::matmul(x, w2, ref2);
      Tensor dx = dev_as(x, DType::bf16), dw1 = to_dev(w1), dw2 = to_dev(w2);
      Tensor dbias = to_dev(bias);
      for (DType od : {DType::bf16, DType::f32}) {
        SCOPED_TRACE(fmt::format("out={}", dtype_name(od)));
        Tensor o1 = dev_empty({m, n}, od), o2 = dev_empty({m, n}, od);
        matmul(dx, dw1, o1, &dbias);
        expect_close(host_f32(o1), ref1, od == DType::bf16 ? kTolerance : 1e-5);
        // Grouped: each output equals its single product.
        Tensor g1 = dev_empty({m, n}, od), g2 = dev_empty({m, n}, od);
        matmul(dx, dw2, o2);
        MatmulGroup groups[] = {{&dw1, &dbias, &g1}, {&dw2, nullptr, &g2}};
        matmul_grouped(dx, groups);
        expect_identical(g1, o1);
        expect_identical(g2, o2);
      }
      // SiLU·mul of the two products rounded to bf16 (as PyTorch's bf16 MLP), rounded into bf16.
      Tensor rs = Tensor::empty({m, n}, DType::f32);
      reference::silu_mul(ref1, ref2, rs);
      Tensor fused = dev_empty({m, n}, DType::bf16);
      matmul_silu_mul(dx, dw1, dw2, fused, &dbias);
      expect_close(host_f32(fused), rs, kTolerance);
      Tensor pg = dev_empty({m, n}, DType::bf16), pu = dev_empty({m, n}, DType::bf16);
      matmul(dx, dw1, pg, &dbias);
      matmul(dx, dw2, pu);
      Tensor unfused = dev_empty({m, n}, DType::bf16);
      silu_mul(pg, pu, unfused);
      expect_identical(fused, unfused);
    }
  }
}

TEST_P(Bf16ActivationTest, QuantizedMatmulPlainGroupedAndSiluMul) {
  Rng rng(504);
  for (int bits : {4, 8}) {
    for (int64_t m : kRows) {
      SCOPED_TRACE(fmt::format("bits={} m={}", bits, m));
      const int64_t k = 1024, n = 320;
      Tensor x = bf16_valued({m, k}, rng);
      QuantizedWeight q1 =
          affine_quantize(to_dev(random_float({n, k}, DType::f32, rng)), bits, 64, DType::bf16);
      QuantizedWeight q2 =
          affine_quantize(to_dev(random_float({n, k}, DType::f32, rng)), bits, 64, DType::bf16);
      Tensor dx32 = dev_as(x, DType::f32), dxb = dev_as(x, DType::bf16);
      // The same product with f32 and bf16 x (the same values): bf16 out is the f32 result
      // rounded once, whatever kernel the row count picks.
      Tensor o32 = dev_empty({m, n}, DType::f32), ob = dev_empty({m, n}, DType::bf16);
      quantized_matmul(dx32, q1, o32);
      quantized_matmul(dxb, q1, ob);
      Tensor rounded = dev_empty({m, n}, DType::bf16);
      copy(o32, rounded);
      expect_identical(ob, rounded);
      // Grouped and SiLU·mul equal their unfused sequences.
      Tensor g1 = dev_empty({m, n}, DType::bf16), g2 = dev_empty({m, n}, DType::bf16);
      Tensor o2 = dev_empty({m, n}, DType::bf16);
      quantized_matmul(dxb, q2, o2);
      QuantizedMatmulGroup groups[] = {{&q1, nullptr, &g1}, {&q2, nullptr, &g2}};
      quantized_matmul_grouped(dxb, groups);
      expect_identical(g1, ob);
      expect_identical(g2, o2);
      Tensor fused = dev_empty({m, n}, DType::bf16);
      quantized_matmul_silu_mul(dxb, q1, q2, fused);
      Tensor pg = dev_empty({m, n}, DType::bf16), pu = dev_empty({m, n}, DType::bf16);
      quantized_matmul(dxb, q1, pg);
      quantized_matmul(dxb, q2, pu);
      Tensor unfused = dev_empty({m, n}, DType::bf16);
      silu_mul(pg, pu, unfused);
      expect_identical(fused, unfused);
    }
  }
}

TEST_P(Bf16ActivationTest, RopeQkAndWriteKv) {
  Rng rng(505);
  for (int64_t t : {1, 5, 40}) {
    SCOPED_TRACE(fmt::format("tokens={}", t));
    const int64_t hq = 8, hkv = 2, d = 128, blocks = 8, bs = 16;
    Tensor q = bf16_valued({t, hq, d}, rng, 2.0f), k = bf16_valued({t, hkv, d}, rng, 2.0f);
    Tensor v = bf16_valued({t, hkv, d}, rng);
    std::vector<int32_t> pos(static_cast<size_t>(t)), slot(static_cast<size_t>(t));
    for (int64_t i = 0; i < t; ++i) {
      pos[size_t(i)] = int32_t(rng.integer(0, 5000));
      slot[size_t(i)] = int32_t((i * 7 + 3) % (blocks * bs));
    }
    Tensor positions = Tensor::from_vector(pos, {t});
    Tensor slots = Tensor::from_vector(slot, {t});
    RopeParams params;
    params.theta = 500000.0;
    params.rotary_dim = d;
    RopeFrequencies f = rope_frequencies(params, 0);
    Tensor inv_freq = Tensor::from_vector(f.inv_freq, {int64_t(f.inv_freq.size())});
    Tensor rq = Tensor::empty(q.shape(), DType::f32), rk = Tensor::empty(k.shape(), DType::f32);
    reference::rope(q, positions, inv_freq, 1.0f, rq);
    reference::rope(k, positions, inv_freq, 1.0f, rk);
    Tensor dpos = to_dev(positions), dfreq = to_dev(inv_freq), dslots = to_dev(slots);
    Tensor dq = dev_as(q, DType::bf16), dk = dev_as(k, DType::bf16), dv = dev_as(v, DType::bf16);
    rope_qk(dq, dk, dpos, dfreq, 1.0f);
    expect_close(host_f32(dq), rq, kTolerance);
    expect_close(host_f32(dk), rk, kTolerance);
    // rope_qk_write_kv into a bf16 cache equals rope_qk then write_kv.
    for (DType cd : {DType::bf16, DType::f32}) {
      SCOPED_TRACE(fmt::format("cache={}", dtype_name(cd)));
      Tensor kc = dev_empty({blocks, hkv, bs, d}, cd), vc = dev_empty({blocks, hkv, bs, d}, cd);
      Tensor uq = dev_as(q, DType::bf16), uk = dev_as(k, DType::bf16);
      rope_qk_write_kv(uq, uk, dv, dpos, dfreq, 1.0f, dslots, kc, vc);
      expect_identical(uq, dq);
      expect_identical(uk, dk);
      Tensor kc2 = dev_empty({blocks, hkv, bs, d}, cd), vc2 = dev_empty({blocks, hkv, bs, d}, cd);
      write_kv(dk, dv, dslots, kc2, vc2);
      for (int64_t i = 0; i < t; ++i) {
        const int64_t s = slot[size_t(i)];
        for (auto [a, b] : {std::pair{&kc, &kc2}, std::pair{&vc, &vc2}})
          expect_identical(a->select(0, s / bs).select(1, s % bs),
                           b->select(0, s / bs).select(1, s % bs));
      }
    }
  }
}

TEST_P(Bf16ActivationTest, PagedAttentionQueriesAndOutputs) {
  Rng rng(506);
  for (const AttentionCase& c :
       {AttentionCase{{{37, 1}, {300, 1}}, 8, 2, 128, 16, 0, DType::bf16},
        AttentionCase{{{45, 45}, {53, 33}}, 8, 2, 128, 16, 0, DType::bf16},
        AttentionCase{{{64, 1}, {40, 40}}, 4, 4, 64, 16, 24, DType::f32}}) {
    SCOPED_TRACE(describe(c));
    PagedTables p = build_tables(c, rng);
    Dims cache_shape{p.num_blocks, c.n_kv, c.block_size, c.head_dim};
    Tensor kc = Tensor::empty(cache_shape, c.dtype), vc = Tensor::empty(cache_shape, c.dtype);
    poison(kc);
    poison(vc);
    for (int64_t s = 0; s < int64_t(c.seqs.size()); ++s)
      for (int64_t t = 0; t < c.seqs[size_t(s)].context; ++t)
        for (Tensor* cache : {&kc, &vc}) {
          Tensor rows = cache->select(0, p.block_of(s, t)).select(1, t % c.block_size);
          copy(random_float({c.n_kv, c.head_dim}, c.dtype, rng), rows);
        }
    Tensor q = bf16_valued({p.tokens, c.n_heads, c.head_dim}, rng, 3.0f);
    const float scale = 1.0f / std::sqrt(float(c.head_dim));
    Tensor ref = Tensor::empty(q.shape(), DType::f32);
    reference::paged_attention(q, kc, vc, p.meta, scale, ref);
    Tensor out = dev_empty(q.shape(), DType::bf16);
    paged_attention(dev_as(q, DType::bf16), to_dev(kc), to_dev(vc), meta_to_dev(*this, p.meta),
                    scale, out);
    expect_close(host_f32(out), ref, kTolerance);
  }
}

HEARTH_OP_TEST_ON_ALL_DEVICES(Bf16ActivationTest);

}  // namespace
}  // namespace hearth::ops::testing
