// The fused decoder-layer ops (add_rms_norm, matmul_grouped, matmul_silu_mul, rope_qk) against
// the unfused op sequence on the same device, which they must equal bit for bit, and against the
// scalar reference: decode (1..8 rows) and prefill (100+ rows) shapes, padded rows, biases, every
// weight dtype matmul takes, and the CUDA kernels' vectorized and fallback layouts.
#include <fmt/format.h>

#include "op_test_util.h"
#include "ops/attention.h"
#include "ops/copy.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/norm.h"
#include "ops/reference/reference.h"
#include "ops/rope.h"

namespace hearth::ops::testing {
namespace {

class FusedTest : public OpTest {
 public:
  // An independent device copy of a host tensor with the same (padded-row) layout: to_dev returns
  // host tensors themselves on the CPU, and the fused and unfused runs must not share memory.
  Tensor fresh(const Tensor& host) {
    const int64_t pad =
        host.is_contiguous() || host.ndim() < 2 ? 0 : host.stride(-2) - host.dim(-1);
    Tensor t = empty_padded(host.shape(), host.dtype(), pad);
    copy(host, t);
    return to_dev(t);
  }
  // An empty (poisoned) device tensor with rows padded by pad.
  Tensor poisoned(const Dims& shape, int64_t pad) {
    Tensor t = empty_padded(shape, DType::f32, pad);
    poison(t);
    return to_dev(t);
  }
  // A device tensor holding `values` as the view [0, len) along dimension dim of a larger
  // (poisoned) tensor of shape base: a slice of a fused projection buffer.
  Tensor slice_of(const Tensor& values, Dims base, int dim, int64_t len) {
    Tensor b = Tensor::empty(base, DType::f32);
    poison(b);
    Tensor view = to_dev(b).slice(dim, 0, len);
    copy(values, view);
    return view;
  }
  Tensor host(const Tensor& dev) {
    Tensor h = Tensor::empty(dev.shape(), dev.dtype());
    fetch(dev, h);
    return h;
  }
  // Both device tensors hold the same values (normalized error 0: equal up to the sign of zero).
  void expect_identical(const Tensor& fused, const Tensor& unfused) {
    expect_close(host(fused), host(unfused), 0.0);
  }
};

// A host copy that shares nothing with t (contiguous() returns t itself when it is contiguous).
Tensor clone(const Tensor& t) {
  Tensor c = Tensor::empty(t.shape(), t.dtype());
  copy(t, c);
  return c;
}

const DType kWeightDtypes[] = {DType::f32, DType::f16, DType::bf16};

// ---- add_rms_norm ----

// Sum of squares and scaling in f32 (as rms_norm): observed <= 1e-7 against the double reference.
constexpr double kNormTolerance = 1e-6;

TEST_P(FusedTest, AddRmsNormEqualsAddThenRmsNorm) {
  Rng rng(901);
  struct Case {
    Dims shape;
    int64_t x_pad, delta_pad;
  };
  // Decode rows and a prefill block; widths odd, a multiple of 4 (16-byte rows on CUDA) and
  // model-sized; pads 4 keep CUDA's vector kernel, 3 force its scalar one (or, for delta only, the
  // vector kernel with scalar delta loads); 6000 and 9000 wide rows take its 8-quad and streaming
  // variants.
  const Case cases[] = {{{1, 64}, 0, 0},    {{3, 7}, 0, 0},     {{8, 1028}, 0, 0},
                        {{5, 100}, 4, 4},   {{2, 100}, 4, 3},   {{4, 33}, 3, 0},
                        {{130, 256}, 0, 0}, {{101, 515}, 0, 3}, {{2, 3, 100}, 0, 0},
                        {{1, 2048}, 0, 4},  {{2, 6000}, 0, 0},  {{2, 9000}, 0, 4}};
  for (DType wd : kWeightDtypes) {
    for (const Case& c : cases) {
      for (bool into_delta : {true, false}) {
        SCOPED_TRACE(fmt::format("w={} shape={} x_pad={} delta_pad={} into_delta={}",
                                 dtype_name(wd), c.shape.str(), c.x_pad, c.delta_pad, into_delta));
        const int64_t xp = c.shape.size() > 1 ? c.x_pad : 0;
        const int64_t dp = c.shape.size() > 1 ? c.delta_pad : 0;
        const float eps = rng.uniform(1e-6f, 1e-5f);
        Tensor x = random_float_padded(c.shape, DType::f32, rng, xp, rng.uniform(0.5f, 4.0f));
        Tensor delta = random_float_padded(c.shape, DType::f32, rng, dp);
        Tensor weight = random_float({c.shape.back()}, wd, rng);

        Tensor ref_x = clone(x);
        Tensor ref_normed = Tensor::empty(c.shape, DType::f32);
        reference::add_rms_norm(ref_x, delta, weight, eps, ref_normed);

        Tensor dw = to_dev(weight);
        // Fused, normalizing into delta (the decoder's use) or into a buffer of its own.
        Tensor fx = fresh(x), fd = fresh(delta);
        Tensor fn = into_delta ? fd : poisoned(c.shape, dp);
        add_rms_norm(fx, fd, dw, eps, fn);
        // Unfused: add on contiguous copies (add takes contiguous tensors; the sums are exact),
        // copied back into x's layout, then rms_norm into a tensor of the normed layout.
        Tensor ux = fresh(x);
        Tensor sum = to_dev(Tensor::empty(c.shape, DType::f32));
        add(contiguous(ux), contiguous(fresh(delta)), sum);
        copy(sum, ux);
        Tensor un = poisoned(c.shape, dp);
        rms_norm(ux, dw, eps, un);

        expect_identical(fx, ux);
        expect_identical(fn, un);
        expect_close(host(fx), ref_x, 0.0);  // one rounding of an exact sum
        expect_close(host(fn), ref_normed, kNormTolerance);
      }
    }
  }
}

// ---- matmul_grouped ----

// f32 accumulation of O(1) products over K <= ~2000 terms (as matmul_test).
constexpr double kMatmulTolerance = 2e-6;

struct GroupedCase {
  int64_t m, k;
  std::vector<int64_t> n;  // one entry per product
};

void run_grouped(FusedTest& t, Rng& rng, const GroupedCase& c, DType wd, int64_t x_pad,
                 int64_t out_pad) {
  SCOPED_TRACE(fmt::format("m={} k={} groups={} w={} x_pad={} out_pad={}", c.m, c.k, c.n.size(),
                           dtype_name(wd), x_pad, out_pad));
  const size_t g = c.n.size();
  Tensor x = random_float_padded({c.m, c.k}, DType::f32, rng, x_pad);
  std::vector<Tensor> w(g), bias(g), ref(g), dw(g), dbias(g), fused(g), unfused(g);
  std::vector<MatmulGroup> ref_groups(g), dev_groups(g);
  for (size_t i = 0; i < g; ++i) {
    w[i] = random_float({c.n[i], c.k}, wd, rng);
    const int64_t bias_kind = rng.integer(0, 2);  // none, f32, bf16
    if (bias_kind) bias[i] = random_float({c.n[i]}, bias_kind == 1 ? DType::f32 : DType::bf16, rng);
    ref[i] = Tensor::empty({c.m, c.n[i]}, DType::f32);
    ref_groups[i] = {&w[i], bias[i].defined() ? &bias[i] : nullptr, &ref[i]};
    dw[i] = t.to_dev(w[i]);
    if (bias[i].defined()) dbias[i] = t.to_dev(bias[i]);
    fused[i] = t.poisoned({c.m, c.n[i]}, out_pad);
    unfused[i] = t.poisoned({c.m, c.n[i]}, out_pad);
    dev_groups[i] = {&dw[i], bias[i].defined() ? &dbias[i] : nullptr, &fused[i]};
  }
  reference::matmul_grouped(x, ref_groups);
  Tensor dx = t.fresh(x);
  matmul_grouped(dx, dev_groups);
  for (size_t i = 0; i < g; ++i) matmul(dx, dw[i], unfused[i], dev_groups[i].bias);
  for (size_t i = 0; i < g; ++i) {
    t.expect_identical(fused[i], unfused[i]);
    t.expect_close(t.host(fused[i]), ref[i], kMatmulTolerance);
  }
}

TEST_P(FusedTest, MatmulGroupedDecodeEqualsSeparateMatmuls) {
  Rng rng(902);
  // q/k/v-like column counts (one wave of two-row warps from 4096 columns on CUDA, so the first
  // cases cross that split), K multiples of 8 (16-byte weight loads) with remainders of the
  // unrolled loop, and K = 1031 (the scalar fallback, product by product).
  const GroupedCase shapes[] = {{1, 136, {4100, 512, 512}},
                                {2, 520, {256, 64, 64}},
                                {3, 64, {5, 3, 7}},
                                {4, 1032, {300, 77, 77, 9}},
                                {5, 1031, {33, 17, 17}},
                                {8, 256, {64, 16}},
                                {7, 128, {129}},
                                {6, 16, {1, 2, 3}}};
  // Every x layout (4: strided rows still 16-byte aligned; 3: the fallback) for bf16, one of
  // them for the other dtypes (keeps the CPU run short).
  const int64_t pads[] = {0, 3, 4};
  for (DType wd : kWeightDtypes) {
    for (const GroupedCase& s : shapes) {
      const int64_t pick = pads[rng.integer(0, 2)];
      for (int64_t x_pad : pads)
        if (wd == DType::bf16 || x_pad == pick)
          run_grouped(*this, rng, s, wd, x_pad, rng.integer(0, 1) * 5);
    }
  }
}

TEST_P(FusedTest, MatmulGroupedPrefillEqualsSeparateMatmuls) {
  // More than 8 rows: on CUDA one cuBLAS GEMM per product over one shared split of x (bf16), f32
  // cuBLAS, or the tiled kernel (f16).
  Rng rng(903);
  for (DType wd : kWeightDtypes) {
    run_grouped(*this, rng, {100, 264, {96, 32, 32}}, wd, 0, 0);
    run_grouped(*this, rng, {131, 72, {40, 24, 24, 8}}, wd, 4, 3);
  }
}

// ---- matmul_silu_mul ----

// The matmul tolerance plus silu's vectorized exp and division (~1e-7).
constexpr double kSiluMatmulTolerance = 4e-6;

void run_silu(FusedTest& t, Rng& rng, int64_t m, int64_t n, int64_t k, DType wd, int64_t x_pad,
              int64_t out_pad) {
  SCOPED_TRACE(fmt::format("m={} n={} k={} w={} x_pad={} out_pad={}", m, n, k, dtype_name(wd),
                           x_pad, out_pad));
  // x scaled so the gate values span silu's curved part and both tails.
  Tensor x = random_float_padded({m, k}, DType::f32, rng, x_pad, 4.0f / std::sqrt(float(k)) * 3);
  Tensor wg = random_float({n, k}, wd, rng), wu = random_float({n, k}, wd, rng);
  const int64_t bias_kind = rng.integer(0, 2);
  Tensor bg, bu;
  if (bias_kind) {
    bg = random_float({n}, bias_kind == 1 ? DType::f32 : DType::bf16, rng);
    if (rng.integer(0, 1)) bu = random_float({n}, DType::f32, rng);
  }
  Tensor ref = Tensor::empty({m, n}, DType::f32);
  reference::matmul_silu_mul(x, wg, wu, ref, bg.defined() ? &bg : nullptr,
                             bu.defined() ? &bu : nullptr);

  Tensor dx = t.fresh(x), dwg = t.to_dev(wg), dwu = t.to_dev(wu);
  Tensor dbg = bg.defined() ? t.to_dev(bg) : Tensor(), dbu = bu.defined() ? t.to_dev(bu) : Tensor();
  const Tensor* pbg = bg.defined() ? &dbg : nullptr;
  const Tensor* pbu = bu.defined() ? &dbu : nullptr;
  Tensor fused = t.poisoned({m, n}, out_pad);
  matmul_silu_mul(dx, dwg, dwu, fused, pbg, pbu);
  // The unfused sequence as the decoder runs it: gate into a buffer of out's layout, up into a
  // contiguous one, silu_mul in place.
  Tensor gate = t.poisoned({m, n}, out_pad), up = t.poisoned({m, n}, 0);
  matmul(dx, dwg, gate, pbg);
  matmul(dx, dwu, up, pbu);
  silu_mul(gate, up, gate);
  t.expect_identical(fused, gate);
  t.expect_close(t.host(fused), ref, kSiluMatmulTolerance);
}

TEST_P(FusedTest, MatmulSiluMulDecodeEqualsUnfused) {
  Rng rng(904);
  for (DType wd : kWeightDtypes) {
    for (int64_t m : {1, 2, 3, 4, 5, 8}) {
      run_silu(*this, rng, m, 300, 264, wd, 0, 0);  // 16-byte loads: the fused GEMV
      run_silu(*this, rng, m, 33, 1032, wd, 4, 5);  // padded but aligned x rows
      run_silu(*this, rng, m, 17, 100, wd, 3, 0);   // unaligned x rows: the unfused fallback
    }
    run_silu(*this, rng, 1, 4097, 64, wd, 0, 0);
    run_silu(*this, rng, 2, 5, 7, wd, 0, 0);  // K not a multiple of the vector width
  }
}

TEST_P(FusedTest, MatmulSiluMulPrefillEqualsUnfused) {
  Rng rng(905);
  for (DType wd : kWeightDtypes) {
    run_silu(*this, rng, 100, 96, 264, wd, 0, 0);
    run_silu(*this, rng, 129, 40, 72, wd, 4, 3);
  }
}

// ---- rope_qk ----

// As rope_test: f32 angles, cos/sin rounded to f32, an f32 rotation.
constexpr double kRopeTolerance = 1e-6;

TEST_P(FusedTest, RopeQkEqualsTwoRopesAndTheCpu) {
  Rng rng(906);
  struct Case {
    int64_t tokens, q_heads, k_heads, head_dim, rotary_dim;
    float scaling;
  };
  // Decode (1 token) and prefill blocks; GQA head counts; partial rotary dims (a copied tail),
  // half not a multiple of 4 (CUDA's scalar kernel), and 72 x 16 units per token (more than one
  // 1024-thread block per token on CUDA).
  const Case cases[] = {{1, 32, 8, 128, 128, 1.0f},  {5, 4, 2, 64, 64, 1.0f},
                        {130, 8, 2, 128, 128, 1.1f}, {3, 64, 8, 128, 128, 1.0f},
                        {4, 3, 1, 80, 40, 1.0f},     {2, 2, 2, 96, 72, 0.9f},
                        {7, 5, 5, 80, 44, 1.0f}};
  for (const Case& c : cases) {
    for (int layout = 0; layout < 3; ++layout) {
      SCOPED_TRACE(fmt::format("T={} Hq={} Hk={} D={} R={} layout={}", c.tokens, c.q_heads,
                               c.k_heads, c.head_dim, c.rotary_dim, layout));
      RopeParams params;
      params.theta = 500000.0;
      params.rotary_dim = c.rotary_dim;
      RopeFrequencies freq = rope_frequencies(params, 0);
      Tensor inv_freq = Tensor::from_vector(freq.inv_freq, {int64_t(freq.inv_freq.size())});
      std::vector<int32_t> pos;
      for (int64_t t = 0; t < c.tokens; ++t)
        pos.push_back(int32_t(c.tokens == 1 ? rng.integer(0, 131072) : 4000 + t));
      Tensor positions = Tensor::from_vector(pos, {c.tokens});
      // Device layouts: contiguous; q/k as head slices of a wider [T, H + 1, D] buffer (token
      // rows strided, still 16-byte aligned); heads padded by 3 floats (unaligned: CUDA's scalar
      // kernel).
      auto place = [&](const Tensor& values) {
        const int64_t heads = values.dim(1);
        if (layout == 0) return slice_of(values, values.shape(), 1, heads);
        if (layout == 1) return slice_of(values, {c.tokens, heads + 1, c.head_dim}, 1, heads);
        return slice_of(values, {c.tokens, heads, c.head_dim + 3}, 2, c.head_dim);
      };
      Tensor q = random_float({c.tokens, c.q_heads, c.head_dim}, DType::f32, rng);
      Tensor k = random_float({c.tokens, c.k_heads, c.head_dim}, DType::f32, rng);
      Tensor ref_q = clone(q), ref_k = clone(k);
      reference::rope_qk(ref_q, ref_k, positions, inv_freq, c.scaling);

      Tensor dpos = to_dev(positions), dfreq = to_dev(inv_freq);
      Tensor fq = place(q), fk = place(k), uq = place(q), uk = place(k);
      rope_qk(fq, fk, dpos, dfreq, c.scaling);
      rope(uq, dpos, dfreq, c.scaling, uq);
      rope(uk, dpos, dfreq, c.scaling, uk);
      expect_identical(fq, uq);
      expect_identical(fk, uk);
      // Bit-identical to the CPU kernel (golden tests compare devices), and close to the reference.
      Tensor cq = clone(q), ck = clone(k);
      rope_qk(cq, ck, positions, inv_freq, c.scaling);
      expect_close(host(fq), cq, 0.0);
      expect_close(host(fk), ck, 0.0);
      expect_close(host(fq), ref_q, kRopeTolerance);
      expect_close(host(fk), ref_k, kRopeTolerance);
    }
  }
}

// ---- rope_qk_write_kv ----

TEST_P(FusedTest, RopeQkWriteKvEqualsRopeQkThenWriteKv) {
  Rng rng(907);
  struct Case {
    int64_t tokens, q_heads, k_heads, head_dim;
    DType cache;
    int64_t block_size, blocks;
  };
  // Decode, prefill with a padded (-1) slot, GQA, f32/f16/bf16 caches, a head_dim whose half is
  // not a multiple of 4.
  const Case cases[] = {{1, 32, 8, 128, DType::bf16, 16, 4},
                        {37, 8, 2, 64, DType::bf16, 16, 5},
                        {9, 4, 4, 80, DType::f32, 8, 3},
                        {20, 6, 2, 96, DType::f16, 32, 2},
                        {5, 2, 1, 72, DType::bf16, 4, 4}};
  auto f32_host = [&](const Tensor& dev) {
    Tensor h = host(dev), f = Tensor::empty(dev.shape(), DType::f32);
    copy(h, f);
    return f;
  };
  for (const Case& c : cases) {
    for (int layout = 0; layout < 2; ++layout) {
      SCOPED_TRACE(fmt::format("T={} Hq={} Hk={} D={} cache={} layout={}", c.tokens, c.q_heads,
                               c.k_heads, c.head_dim, dtype_name(c.cache), layout));
      RopeParams params;
      params.theta = 10000.0;
      params.rotary_dim = int(c.head_dim);
      RopeFrequencies freq = rope_frequencies(params, 0);
      Tensor inv_freq = Tensor::from_vector(freq.inv_freq, {int64_t(freq.inv_freq.size())});
      std::vector<int32_t> pos, slot_ids;
      // Distinct slots in a shuffled order; the second token of a prefill is padding.
      std::vector<int32_t> free_slots(size_t(c.blocks * c.block_size));
      for (size_t i = 0; i < free_slots.size(); ++i) free_slots[i] = int32_t(i);
      for (size_t i = free_slots.size() - 1; i > 0; --i)
        std::swap(free_slots[i], free_slots[size_t(rng.integer(0, int(i)))]);
      for (int64_t t = 0; t < c.tokens; ++t) {
        pos.push_back(int32_t(100 + t));
        slot_ids.push_back(c.tokens > 1 && t == 1 ? -1 : free_slots[size_t(t)]);
      }
      Tensor positions = to_dev(Tensor::from_vector(pos, {c.tokens}));
      Tensor slots = to_dev(Tensor::from_vector(slot_ids, {c.tokens}));
      Tensor dfreq = to_dev(inv_freq);
      auto place = [&](const Tensor& values) {
        const int64_t heads = values.dim(1);
        if (layout == 0) return slice_of(values, values.shape(), 1, heads);
        return slice_of(values, {c.tokens, heads + 1, c.head_dim}, 1, heads);
      };
      Tensor q = random_float({c.tokens, c.q_heads, c.head_dim}, DType::f32, rng);
      Tensor k = random_float({c.tokens, c.k_heads, c.head_dim}, DType::f32, rng);
      Tensor v = random_float({c.tokens, c.k_heads, c.head_dim}, DType::f32, rng);
      const Dims cache_shape = {c.blocks, c.k_heads, c.block_size, c.head_dim};
      auto cache = [&] { return fresh(Tensor::zeros(cache_shape, c.cache)); };
      Tensor fq = place(q), fk = place(k), fv = place(v), uq = place(q), uk = place(k);
      Tensor fkc = cache(), fvc = cache(), ukc = cache(), uvc = cache();
      rope_qk_write_kv(fq, fk, fv, positions, dfreq, 1.0f, slots, fkc, fvc);
      rope_qk(uq, uk, positions, dfreq, 1.0f);
      write_kv(uk, fv, slots, ukc, uvc);
      expect_identical(fq, uq);
      expect_identical(fk, uk);
      expect_close(f32_host(fkc), f32_host(ukc), 0.0);
      expect_close(f32_host(fvc), f32_host(uvc), 0.0);
      // The rotated keys are in the cache: a slot written holds k (rounded to the cache dtype).
      const Tensor hk = f32_host(uk), hkc = f32_host(fkc);
      Tensor key0 = Tensor::empty({c.head_dim}, c.cache),
             key0_f32 = Tensor::empty({c.head_dim}, DType::f32);
      copy(hk.slice(0, 0, 1).slice(1, 0, 1).reshape({c.head_dim}), key0);
      copy(key0, key0_f32);
      const int64_t s0 = slot_ids[0];
      expect_close(hkc.slice(0, s0 / c.block_size, s0 / c.block_size + 1)
                       .slice(1, 0, 1)
                       .slice(2, s0 % c.block_size, s0 % c.block_size + 1)
                       .reshape({c.head_dim}),
                   key0_f32, 0.0);
    }
  }
}

HEARTH_OP_TEST_ON_ALL_DEVICES(FusedTest);

}  // namespace
}  // namespace hearth::ops::testing
