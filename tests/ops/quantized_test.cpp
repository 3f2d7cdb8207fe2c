// Quantized ops against the reference: pack/unpack round trips, quantized_matmul (GEMV and GEMM
// paths, every bit width and scale dtype, odd shapes, padded rows, bias) and quantized_embedding;
// argument errors.
#include <fmt/format.h>

#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "op_test_util.h"
#include "ops/cpu/matmul_internal.h"
#include "ops/cpu/quantized_internal.h"
#include "ops/elementwise.h"
#include "ops/precision.h"
#include "ops/quantized.h"
#include "ops/reference/reference.h"
#include "quantized_test_util.h"

namespace hearth::ops::testing {
namespace {

class QuantizedTest : public OpTest {
 public:
  QuantizedWeight to_dev_weight(const QuantizedWeight& q) const {
    QuantizedWeight d = q;
    d.packed = to_dev(q.packed);
    d.scales = to_dev(q.scales);
    d.biases = to_dev(q.biases);
    return d;
  }
};

// f32 accumulation over K <= ~1000 terms, with the affine map folded per group (s * dot + b *
// sum): observed <= 6e-7 on the CPU backend; a dropped group or a misplaced code shows up as
// >= 1e-3.
constexpr double kMatmulTolerance = 1e-5;

// A quantized [n, k] weight with random codes (every bit pattern is a valid code stream) and
// centred random scales and biases, as a trained model has: w = s * (q - 2^(bits-1)) roughly.
QuantizedWeight random_weight(int64_t n, int64_t k, int bits, int gs, DType scale_dtype, Rng& rng) {
  QuantizedWeight q;
  q.bits = bits;
  q.group_size = gs;
  q.packed = Tensor::empty({n, k * bits / 32}, DType::u32);
  for (int64_t i = 0; i < q.packed.numel(); ++i)
    q.packed.data<uint32_t>()[i] = uint32_t(rng.engine()());
  std::vector<float> s(size_t(n * (k / gs))), b(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    s[i] = rng.uniform(0.2f, 1.0f) / float(1 << bits) * (rng.uniform(0, 1) < 0.5f ? -1.0f : 1.0f);
    b[i] = -s[i] * float(1 << (bits - 1)) * rng.uniform(0.8f, 1.2f);
  }
  Tensor sf = Tensor::from_vector(s, {n, k / gs}), bf = Tensor::from_vector(b, {n, k / gs});
  q.scales = Tensor::empty(sf.shape(), scale_dtype);
  q.biases = Tensor::empty(bf.shape(), scale_dtype);
  reference::copy(sf, q.scales);
  reference::copy(bf, q.biases);
  return q;
}

TEST_P(QuantizedTest, PackUnpackRoundTrip) {
  // Codes written bit by bit here (an independent packer) come back from the kernels' unpacking
  // (dequantize with scale 1, bias 0) and from the reference's code reader; quantizing the
  // dequantized values gives the codes back.
  Rng rng(31);
  for (int bits : kQuantBits) {
    for (int gs : kQuantGroupSizes) {
      SCOPED_TRACE(fmt::format("bits={} gs={}", bits, gs));
      const int64_t n = 5, k = gs * 3;
      std::vector<uint32_t> codes(size_t(n * k));
      for (auto& c : codes) c = uint32_t(rng.integer(0, (1 << bits) - 1));
      // Each group spans 0 and the top code, so re-quantizing finds the same scale.
      for (int64_t g = 0; g < n * k / gs; ++g) {
        codes[size_t(g * gs)] = 0;
        codes[size_t(g * gs + 1)] = (1u << bits) - 1;
      }
      QuantizedWeight q;
      q.bits = bits;
      q.group_size = gs;
      q.packed = Tensor::zeros({n, k * bits / 32}, DType::u32);
      for (int64_t r = 0; r < n; ++r)
        for (int64_t col = 0; col < k; ++col)
          for (int b = 0; b < bits; ++b) {
            const int64_t bit = r * k * bits + col * bits + b;
            if ((codes[size_t(r * k + col)] >> b) & 1u)
              q.packed.data<uint32_t>()[bit / 32] |= 1u << (bit % 32);
          }
      q.scales = Tensor::from_vector(std::vector<float>(size_t(n * k / gs), 1.0f), {n, k / gs});
      q.biases = Tensor::zeros({n, k / gs}, DType::f32);
      Tensor out = Tensor::empty({n, k}, DType::f32);
      poison(out);
      Tensor dout = to_dev(out);
      affine_dequantize(to_dev_weight(q), dout);
      fetch(dout, out);
      for (int64_t i = 0; i < n * k; ++i) {
        ASSERT_EQ(out.data<float>()[i], float(codes[size_t(i)])) << "element " << i;
        ASSERT_EQ(reference::quantized_code(q, i / k, i % k), codes[size_t(i)]) << "element " << i;
      }
      // Re-quantizing: max (2^bits - 1) has the larger magnitude, so MLX makes it the bias with a
      // scale of -1, and the codes come back complemented.
      QuantizedWeight again = affine_quantize(to_dev(out), bits, gs, DType::f32, MlxQuantizer::cpu);
      QuantizedWeight h = again;
      h.packed = to_host(again.packed);
      h.scales = to_host(again.scales);
      h.biases = to_host(again.biases);
      for (int64_t i = 0; i < n * k; ++i)
        ASSERT_EQ(reference::quantized_code(h, i / k, i % k), (1u << bits) - 1 - codes[size_t(i)])
            << "element " << i;
      for (int64_t g = 0; g < n * k / gs; ++g) {
        ASSERT_EQ(h.scales.data<float>()[g], -1.0f);
        ASSERT_EQ(h.biases.data<float>()[g], float((1 << bits) - 1));
      }
    }
  }
}

TEST_P(QuantizedTest, QuantizationErrorWithinAStep) {
  // MLX's own check (python/tests/test_quantized.py): |w - dequantize(quantize(w))| <= |scale|
  // (not half a step: the scale is stretched so the larger end is exact, and the other end may
  // then fall up to a step outside the codes).
  Rng rng(37);
  for (int bits : kQuantBits)
    for (int gs : kQuantGroupSizes) {
      SCOPED_TRACE(fmt::format("bits={} gs={}", bits, gs));
      Tensor w = random_float({9, gs * 4}, DType::f32, rng);
      QuantizedWeight q = affine_quantize(to_dev(w), bits, gs, DType::f32);
      Tensor deq = to_dev(Tensor::empty(w.shape(), DType::f32));
      affine_dequantize(q, deq);
      Tensor d = to_host(deq), s = to_host(q.scales);
      for (int64_t i = 0; i < w.numel(); ++i) {
        const float scale = s.data<float>()[i / gs];
        ASSERT_LE(std::abs(d.data<float>()[i] - w.data<float>()[i]), std::abs(scale) + 1e-6f)
            << "element " << i;
      }
    }
}

void run_matmul(QuantizedTest& t, Rng& rng, int64_t m, int64_t n, int64_t k, int bits, int gs,
                DType sd, int bias_kind, int64_t x_pad, int64_t out_pad) {
  SCOPED_TRACE(fmt::format("m={} n={} k={} bits={} gs={} scales={} bias={} x_pad={} out_pad={}", m,
                           n, k, bits, gs, dtype_name(sd), bias_kind, x_pad, out_pad));
  QuantizedWeight w = random_weight(n, k, bits, gs, sd, rng);
  Tensor x = random_float_padded({m, k}, DType::f32, rng, x_pad);
  Tensor bias =
      bias_kind ? random_float({n}, bias_kind == 1 ? DType::f32 : DType::bf16, rng) : Tensor();
  Tensor out = empty_padded({m, n}, DType::f32, out_pad);
  poison(out);
  Tensor ref = Tensor::empty({m, n}, DType::f32);
  reference::quantized_matmul(x, w, ref, bias_kind ? &bias : nullptr);
  Tensor dout = t.to_dev(out), dbias = bias_kind ? t.to_dev(bias) : Tensor();
  quantized_matmul(t.to_dev(x), t.to_dev_weight(w), dout, bias_kind ? &dbias : nullptr);
  t.fetch(dout, out);
  t.expect_close(out, ref, kMatmulTolerance);
}

TEST_P(QuantizedTest, GemvShapes) {
  Rng rng(41);
  for (int bits : kQuantBits)
    for (int gs : kQuantGroupSizes)
      for (int64_t m : {1, 2, 3, 4, 5, 7, 8, 13, 16}) {
        const int64_t n = rng.integer(1, 70), k = gs * rng.integer(1, 5);
        run_matmul(*this, rng, m, n, k, bits, gs, DType(rng.integer(0, 2)), int(rng.integer(0, 2)),
                   rng.integer(0, 1) * 3, rng.integer(0, 1) * 5);
      }
}

TEST_P(QuantizedTest, GemmShapes) {
  Rng rng(43);
  // M past the GEMV limit with every remainder of the 6-row micro-tile; N around the 16-column
  // panels; K across the 256-wide chunks.
  const int64_t ms[] = {17, 18, 19, 20, 21, 22, 40, 97};
  int i = 0;
  for (int bits : kQuantBits)
    for (int gs : kQuantGroupSizes) {
      const int64_t m = ms[i++ % 8], n = rng.integer(1, 140), k = gs * rng.integer(1, 12);
      run_matmul(*this, rng, m, n, k, bits, gs, DType(rng.integer(0, 2)), int(rng.integer(0, 2)),
                 rng.integer(0, 1) * 3, rng.integer(0, 1) * 5);
    }
}

TEST_P(QuantizedTest, LargerShapesCrossThreadsAndTiles) {
  Rng rng(47);
  for (int bits : {4, 8, 3}) {
    run_matmul(*this, rng, 1, 1000, 1024, bits, 64, DType::bf16, 1, 0, 0);
    run_matmul(*this, rng, 4, 300, 640, bits, 128, DType::f16, 0, 0, 0);
    run_matmul(*this, rng, 70, 300, 768, bits, 32, DType::f32, 2, 3, 1);
  }
}

TEST_P(QuantizedTest, GemvUnitKernelShapes) {
  // 4 and 8 bits on CUDA take the 16-byte-unit GEMV (32 / 16 codes per unit, 8 unit loads per
  // lane per step: 256, 128 or 64 units per warp step for 1, 2 or 4 weight rows per warp). Shapes
  // around its edges: K with a partial last step (units not a multiple of 32, so some lanes of the
  // last step idle), N not a multiple of the 8 warps x rows per warp (1 row below N = 2048, 2 up
  // to 8192, 4 from there for m <= 2), every m up to 8, x in shared memory (m * K * 4 bytes up to
  // 96 KiB) or staged in global memory (larger), bias, padded x and out rows.
  Rng rng(67);
  for (int bits : {4, 8})
    for (int gs : kQuantGroupSizes) {
      const int64_t codes = 128 / bits;  // per unit
      // One row per warp; units: a full step of 256 plus a 3-unit tail (4 bits), or under a step.
      for (int64_t m = 1; m <= 8; ++m) {
        const int64_t k = m % 2 ? (256 + 3) * codes / gs * gs + gs : gs * rng.integer(1, 9);
        run_matmul(*this, rng, m, rng.integer(1, m % 2 ? 20 : 45), k, bits, gs,
                   DType(rng.integer(0, 2)), int(rng.integer(0, 2)), rng.integer(0, 1) * 3,
                   rng.integer(0, 1) * 5);
      }
      // x too large for shared memory: 5 rows x 5120 columns = 100 KiB.
      run_matmul(*this, rng, 5, 37, 5120, bits, gs, DType::f32, 1, 3, 1);
      if (gs != 64) continue;  // the row tiling below does not depend on the group size
      // Two rows per warp, N around the 16-row tiles; at 8 bits and m = 1 a K of a full 128-unit
      // step and a tail (short K otherwise: the scalar CPU reference is slow).
      for (int64_t m : {1, 3, 8})
        run_matmul(*this, rng, m, 2048 + 16 * rng.integer(0, 3) + rng.integer(1, 15),
                   m == 1 && bits == 8 ? 128 * codes + gs : gs, bits, gs, DType::bf16, 1, 3, 0);
      // Four rows per warp (m <= 2) and two (m = 4): N = 8192 + a partial 32-row tile.
      for (int64_t m : {1, 2, 4})
        run_matmul(*this, rng, m, 8192 + 19, gs, bits, gs, DType::f16, 2, 0, 1);
    }
}

// x rounded to int16 per quantization group, written out here from the rule in ops/precision.h
// and cpu/qgemv.cpp, independently of the kernel: q = round-half-even(x * (32767 / amax)) in f32,
// x ~= q * (amax / 32767), amax the group's largest |x|.
Tensor round_x_per_group_int16(const Tensor& x, int gs) {
  Tensor r = Tensor::empty(x.shape(), DType::f32);
  const int64_t m = x.dim(0), k = x.dim(1);
  const float* in = x.data<float>();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t g = 0; g < k / gs; ++g) {
      float amax = 0;
      for (int64_t j = g * gs; j < (g + 1) * gs; ++j)
        amax = std::max(amax, std::abs(in[i * k + j]));
      const float inv = amax > 0 ? 32767.0f / amax : 0.0f, step = amax / 32767.0f;
      for (int64_t j = g * gs; j < (g + 1) * gs; ++j)
        r.data<float>()[i * k + j] = std::nearbyint(in[i * k + j] * inv) * step;
    }
  return r;
}

// x rounded to bf16 (nearest even) by the host conversion, back in f32.
Tensor round_x_bf16(const Tensor& x) {
  Tensor b = Tensor::empty(x.shape(), DType::bf16), r = Tensor::empty(x.shape(), DType::f32);
  reference::copy(x, b);
  reference::copy(b, r);
  return r;
}

// What MatmulPrecision::bf16 computes on CUDA for a quantized product of m rows: the 4-bit GEMV
// (m <= 32, K a multiple of 128; ops::cuda_bf16_kernels_enabled()) rounds x to bf16 and keeps
// the codes exact; other GEMVs
// (m <= 8) are exact; a GEMM multiplies x rounded to bf16 by the weights dequantized into bf16
// (MLX's dequantize). Returns the reference for out, or an undefined tensor when exact.
Tensor cuda_bf16_reference(const Tensor& x, const QuantizedWeight& w, const Tensor& bias) {
  const int64_t m = x.dim(0), n = w.rows(), k = w.cols();
  Tensor ref = Tensor::empty({m, n}, DType::f32);
  if (cuda_bf16_kernels_enabled() && m <= 32 && w.bits == 4 && k % 128 == 0) {
    reference::quantized_matmul(round_x_bf16(x), w, ref, &bias);
    return ref;
  }
  if (m <= 8) return Tensor();
  Tensor wd = Tensor::empty({n, k}, DType::bf16);
  reference::affine_dequantize(w, wd);
  reference::matmul(round_x_bf16(x), wd, ref, &bias);
  return ref;
}

// MatmulPrecision::bf16: the CPU's 4/8-bit GEMV rounds x to int16 per group (K a multiple of its
// 64 / 32-code block), and so does the GEMM (every width) on CPUs with VNNI; both equal the
// reference on that rounded x, and their error against the exact product stays far below a
// bf16 rounding of x (~2e-3). Other widths, other K and the GEMM without VNNI stay exact. CUDA
// rounds x to bf16 (cuda_bf16_reference). Groups of zeros and a large-magnitude row included;
// GEMM shapes with remainders of the 6-row micro-kernel and 16-column panels, and K across its
// 512-wide chunks.
TEST_P(QuantizedTest, Bf16PrecisionRoundsInput) {
  Rng rng(71);
  MatmulPrecisionScope scope(MatmulPrecision::bf16);
  const bool cpu = device().is_cpu();
  for (int bits : {4, 8, 3})
    for (int gs : kQuantGroupSizes)
      for (int64_t m : {1, 2, 3, 4, 5, 8, 13, 20, 37}) {
        // m = 3: K = 224 at 4 bits and group 32 is not a whole number of 64-code blocks.
        int64_t k =
            m == 3 ? (bits == 4 && gs == 32 ? 224 : 3 * std::max(gs, 64)) : 128 * (1 + m % 3);
        if (m == 37) k = 1280;  // three K chunks of the GEMM, the last one partial
        if (m == 13) k = 2304;  // AVX512-VNNI GEMV: 8 + 4 + 1 rows, groups past a 16-group chunk
        // N >= 8: with one or two outputs, f32 cancellation can exceed the 1e-5 normalized
        // tolerance.
        const int64_t n = m == 37 ? 16 * 3 + 5 : rng.integer(8, 40);
        SCOPED_TRACE(fmt::format("bits={} gs={} m={} n={} k={}", bits, gs, m, n, k));
        QuantizedWeight w = random_weight(n, k, bits, gs, DType::bf16, rng);
        Tensor x = random_float({m, k}, DType::f32, rng);
        for (int64_t j = 0; j < gs; ++j) x.data<float>()[j] = 0.0f;  // a group of zeros
        if (m > 1)
          for (int64_t j = 0; j < k; ++j) x.data<float>()[k + j] *= 3e4f;  // large magnitudes
        Tensor bias = random_float({n}, DType::f32, rng);
        Tensor exact = Tensor::empty({m, n}, DType::f32);
        reference::quantized_matmul(x, w, exact, &bias);
        Tensor out = Tensor::empty({m, n}, DType::f32);
        Tensor dout = to_dev(out), dbias = to_dev(bias);
        quantized_matmul(to_dev(x), to_dev_weight(w), dout, &dbias);
        fetch(dout, out);
        Tensor rounded;
        double bound = 1e-4;  // int16 rounding on the CPU
        if (cpu) {
          // The GEMV takes up to cpu::gemv_max_rows() rows (16; 0 under
          // HEARTH_CPU_GEMV_MAX_ROWS=0).
          const bool gemv = m <= cpu::gemv_max_rows();
          const int64_t block = bits == 4 ? 64 : 32;
          if (gemv ? bits != 3 && k % block == 0 : cpu::cpu_vnni() != cpu::CpuVnni::none) {
            rounded = Tensor::empty({m, n}, DType::f32);
            reference::quantized_matmul(round_x_per_group_int16(x, gs), w, rounded, &bias);
          }
        } else {
          rounded = cuda_bf16_reference(x, w, bias);
          bound = 1e-2;  // x (and a GEMM's weights) rounded to bf16: 2^-9 relative each
        }
        expect_close(out, rounded.defined() ? rounded : exact, kMatmulTolerance);
        if (rounded.defined()) {
          EXPECT_LT(normalized_error(out, exact), bound);
          EXPECT_GT(normalized_error(out, exact), 1e-7);  // the rounded path did run
        }
      }
}

// The grouped and SwiGLU-fused quantized products equal the single products and silu_mul bit for
// bit, at both precisions (on CUDA the bf16 4-bit GEMV runs them in one launch, tiles of 16 rows
// or 8 gate + 8 up rows): every width, N not a multiple of the tiles, a bias on some products,
// K that takes the tensor-core GEMV (a multiple of 128) and K that does not, GEMV and GEMM rows.
TEST_P(QuantizedTest, GroupedAndSiluMulEqualSingleProducts) {
  Rng rng(73);
  for (MatmulPrecision precision : {MatmulPrecision::exact, MatmulPrecision::bf16}) {
    MatmulPrecisionScope scope(precision);
    for (int bits : {4, 8, 3})
      for (int64_t m : {1, 3, 8, 12})
        for (int64_t k : {384, 96}) {
          const int gs = k == 96 ? 32 : 64;
          SCOPED_TRACE(fmt::format("precision={} bits={} m={} k={}",
                                   matmul_precision_name(precision), bits, m, k));
          const int64_t ns[3] = {40, 24, 9};
          QuantizedWeight w[3];
          std::vector<QuantizedWeight> dw;
          for (int i = 0; i < 3; ++i) {
            w[i] = random_weight(ns[i], k, bits, gs, DType::bf16, rng);
            dw.push_back(to_dev_weight(w[i]));
          }
          Tensor x = to_dev(random_float({m, k}, DType::f32, rng));
          Tensor bias = to_dev(random_float({ns[1]}, DType::f32, rng));
          Tensor single[3], grouped[3];
          std::vector<QuantizedMatmulGroup> groups;
          for (int i = 0; i < 3; ++i) {
            single[i] = to_dev(Tensor::empty({m, ns[i]}, DType::f32));
            grouped[i] = to_dev(Tensor::empty({m, ns[i]}, DType::f32));
            quantized_matmul(x, dw[size_t(i)], single[i], i == 1 ? &bias : nullptr);
            groups.push_back({&dw[size_t(i)], i == 1 ? &bias : nullptr, &grouped[i]});
          }
          quantized_matmul_grouped(x, groups);
          for (int i = 0; i < 3; ++i) expect_close(to_host(grouped[i]), to_host(single[i]), 0.0);
          // SwiGLU: gate = product 0 with a bias, up = a second weight of its shape.
          QuantizedWeight up = to_dev_weight(random_weight(ns[0], k, bits, gs, DType::bf16, rng));
          Tensor gate_bias = to_dev(random_float({ns[0]}, DType::f32, rng));
          Tensor g = to_dev(Tensor::empty({m, ns[0]}, DType::f32));
          Tensor u = to_dev(Tensor::empty({m, ns[0]}, DType::f32));
          Tensor fused = to_dev(Tensor::empty({m, ns[0]}, DType::f32));
          quantized_matmul(x, dw[0], g, &gate_bias);
          quantized_matmul(x, up, u);
          silu_mul(g, u, g);
          quantized_matmul_silu_mul(x, dw[0], up, fused, &gate_bias, nullptr);
          expect_close(to_host(fused), to_host(g), 0.0);
        }
  }
}

// Launches on both sides of the CUDA 4-bit GEMV's block width (8 warps for launches of fewer tiles
// than two an SM, 4 otherwise; on a 132-SM H100 or H200): a single 4096-row product (256 tiles)
// against the same product in a group of four (1,024 tiles), and a 4000-row SwiGLU (500 tiles of 8
// gate + 8 up rows) against its single products (250 tiles each) agree bit for bit; K of 16 steps
// of 128 codes gives every class of steps whose sums stay apart some work.
TEST_P(QuantizedTest, WideAndNarrowGemvBlocksGiveTheSameBits) {
  Rng rng(79);
  MatmulPrecisionScope scope(MatmulPrecision::bf16);
  const int64_t k = 2048;
  for (int64_t m : {1, 3}) {
    SCOPED_TRACE(fmt::format("m={}", m));
    Tensor x = to_dev(random_float({m, k}, DType::f32, rng));
    std::vector<QuantizedWeight> dw;
    for (int i = 0; i < 4; ++i)
      dw.push_back(to_dev_weight(random_weight(4096, k, 4, 64, DType::bf16, rng)));
    Tensor single = to_dev(Tensor::empty({m, 4096}, DType::f32));
    quantized_matmul(x, dw[0], single);
    std::vector<Tensor> grouped;
    for (int i = 0; i < 4; ++i) grouped.push_back(to_dev(Tensor::empty({m, 4096}, DType::f32)));
    std::vector<QuantizedMatmulGroup> groups;
    for (int i = 0; i < 4; ++i) groups.push_back({&dw[size_t(i)], nullptr, &grouped[size_t(i)]});
    quantized_matmul_grouped(x, groups);
    expect_close(to_host(grouped[0]), to_host(single), 0.0);

    QuantizedWeight gate = to_dev_weight(random_weight(4000, k, 4, 64, DType::bf16, rng));
    QuantizedWeight up = to_dev_weight(random_weight(4000, k, 4, 64, DType::bf16, rng));
    Tensor g = to_dev(Tensor::empty({m, 4000}, DType::f32));
    Tensor u = to_dev(Tensor::empty({m, 4000}, DType::f32));
    Tensor fused = to_dev(Tensor::empty({m, 4000}, DType::f32));
    quantized_matmul(x, gate, g);
    quantized_matmul(x, up, u);
    silu_mul(g, u, g);
    quantized_matmul_silu_mul(x, gate, up, fused);
    expect_close(to_host(fused), to_host(g), 0.0);
  }
}

TEST_P(QuantizedTest, Embedding) {
  Rng rng(53);
  for (int bits : kQuantBits)
    for (int gs : kQuantGroupSizes) {
      const int64_t vocab = rng.integer(1, 300), hidden = gs * rng.integer(1, 4),
                    tokens = rng.integer(1, 40);
      const DType sd = DType(rng.integer(0, 2));
      SCOPED_TRACE(fmt::format("bits={} gs={} V={} H={} T={} scales={}", bits, gs, vocab, hidden,
                               tokens, dtype_name(sd)));
      QuantizedWeight table = random_weight(vocab, hidden, bits, gs, sd, rng);
      std::vector<int32_t> ids;
      for (int64_t t = 0; t < tokens; ++t) ids.push_back(int32_t(rng.integer(0, vocab - 1)));
      ids[0] = int32_t(vocab - 1);
      Tensor tid = Tensor::from_vector(ids, {tokens});
      Tensor out = empty_padded({tokens, hidden}, DType::f32, tokens % 2);
      poison(out);
      Tensor ref = Tensor::empty({tokens, hidden}, DType::f32);
      reference::quantized_embedding(table, tid, ref);
      Tensor dout = to_dev(out);
      quantized_embedding(to_dev_weight(table), to_dev(tid), dout);
      fetch(dout, out);
      expect_close(out, ref, 0.0);  // same arithmetic as affine_dequantize: exact
    }
}

TEST_P(QuantizedTest, EmbeddingIdOutOfRange) {
  // The CPU checks ids at once; CUDA records the first bad (position, id) on the device and fails
  // at the next device -> host transfer (no sync per gather), as the dense embedding does.
  Rng rng(59);
  QuantizedWeight table = to_dev_weight(random_weight(10, 64, 4, 32, DType::bf16, rng));
  Tensor out = to_dev(Tensor::empty({3, 64}, DType::f32));
  for (int32_t bad : {10, -1}) {
    Tensor ids = to_dev(Tensor::from_vector(std::vector<int32_t>{3, bad, 12}, {3}));
    try {
      quantized_embedding(table, ids, out);
      to_host(out);
      ADD_FAILURE() << "no error for id " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
      const std::string what = e.what();
      EXPECT_NE(what.find("quantized_embedding"), std::string::npos) << what;
      EXPECT_NE(what.find(fmt::format("id {} at position 1", bad)), std::string::npos) << what;
    }
  }
  // Reported once: valid ids afterwards gather and read back.
  Tensor good = to_dev(Tensor::from_vector(std::vector<int32_t>{9, 0, 4}, {3}));
  quantized_embedding(table, good, out);
  EXPECT_NO_THROW(to_host(out));
}

HEARTH_OP_TEST_ON_ALL_DEVICES(QuantizedTest);

// ---- argument errors ----------------------------------------------------------------------------

void expect_bad(const std::function<void()>& fn, std::initializer_list<std::string> fragments) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning " << *fragments.begin();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument) << e.what();
    for (const std::string& f : fragments)
      EXPECT_NE(std::string(e.what()).find(f), std::string::npos)
          << "message \"" << e.what() << "\" lacks \"" << f << "\"";
  }
}

TEST(QuantizedArguments, Quantize) {
  Tensor w = Tensor::zeros({4, 128}, DType::f32);
  expect_bad(
      [&] {
        affine_quantize(Tensor::zeros({4, 100}, DType::f32), 4, 64, DType::f32);
      },
      {"affine_quantize", "100 columns", "group_size 64"});
  expect_bad([&] { affine_quantize(w, 7, 64, DType::f32); }, {"affine_quantize", "bits", "7"});
  expect_bad([&] { affine_quantize(w, 1, 64, DType::f32); }, {"affine_quantize", "bits"});
  expect_bad([&] { affine_quantize(w, 4, 16, DType::f32); }, {"affine_quantize", "group_size"});
  expect_bad([&] { affine_quantize(w, 4, 256, DType::f32); }, {"affine_quantize", "group_size"});
  expect_bad([&] { affine_quantize(w, 4, 64, DType::i32); }, {"affine_quantize", "scale_dtype"});
  expect_bad(
      [&] {
        affine_quantize(Tensor::zeros({4, 128}, DType::i32), 4, 64, DType::f32);
      },
      {"affine_quantize", "w must be"});
  expect_bad(
      [&] {
        affine_quantize(Tensor::zeros({2, 4, 128}, DType::f32), 4, 64, DType::f32);
      },
      {"affine_quantize", "w must have 2"});
  expect_bad([&] { affine_quantize(Tensor(), 4, 64, DType::f32); },
             {"affine_quantize", "undefined"});
}

TEST(QuantizedArguments, WeightAndProducts) {
  Rng rng(61);
  QuantizedWeight good = random_weight(8, 128, 4, 64, DType::bf16, rng);
  Tensor x = Tensor::zeros({2, 128}, DType::f32);
  Tensor out = Tensor::zeros({2, 8}, DType::f32);
  auto with = [&](const std::function<void(QuantizedWeight&)>& change) {
    QuantizedWeight q = good;
    change(q);
    return q;
  };
  expect_bad([&] { quantized_matmul(x, with([](QuantizedWeight& q) { q.bits = 7; }), out); },
             {"quantized_matmul", "bits"});
  expect_bad([&] { quantized_matmul(x, with([](QuantizedWeight& q) { q.group_size = 48; }), out); },
             {"quantized_matmul", "group_size"});
  expect_bad(
      [&] { quantized_matmul(x, with([](QuantizedWeight& q) { q.group_size = 128; }), out); },
      {"quantized_matmul", "scales"});  // [8, 2] scales for 1 group per row
  expect_bad(
      [&] {
        quantized_matmul(
            x, with([](QuantizedWeight& q) { q.packed = q.packed.bitcast(DType::i32); }), out);
      },
      {"quantized_matmul", "packed must be u32"});
  expect_bad(
      [&] {
        quantized_matmul(x, with([](QuantizedWeight& q) {
                           q.biases = Tensor::zeros({8, 2}, DType::f32);
                         }),
                         out);
      },
      {"quantized_matmul", "biases must be bf16"});
  expect_bad(
      [&] {
        quantized_matmul(x, with([](QuantizedWeight& q) {
                           q.scales = Tensor::zeros({8, 3}, DType::bf16);
                         }),
                         out);
      },
      {"quantized_matmul", "scales"});
  expect_bad(
      [&] {
        quantized_matmul(x, with([](QuantizedWeight& q) {
                           q.packed = Tensor::zeros({8, 15}, DType::u32);
                         }),
                         out);
      },
      {"quantized_matmul", "multiple of group_size"});
  expect_bad([&] { quantized_matmul(x, with([](QuantizedWeight& q) { q.bits = 3; }), out); },
             {"quantized_matmul", "3-bit"});  // 16 words x 32 / 3 is not whole
  expect_bad(
      [&] { quantized_matmul(x, with([](QuantizedWeight& q) { q.scales = Tensor(); }), out); },
      {"quantized_matmul", "scales is an undefined"});
  expect_bad(
      [&] {
        quantized_matmul(Tensor::zeros({2, 64}, DType::f32), good, out);
      },
      {"quantized_matmul", "K must match"});
  Tensor wrong_out = Tensor::zeros({2, 9}, DType::f32);
  expect_bad([&] { quantized_matmul(x, good, wrong_out); }, {"quantized_matmul", "out", "[2, 8]"});
  expect_bad(
      [&] {
        quantized_matmul(Tensor::zeros({2, 128}, DType::f16), good, out);
      },
      {"quantized_matmul", "x must be f32/bf16"});
  Tensor bias = Tensor::zeros({9}, DType::f32);
  expect_bad([&] { quantized_matmul(x, good, out, &bias); }, {"quantized_matmul", "bias has 9"});
  Tensor deq = Tensor::zeros({8, 64}, DType::f32);
  expect_bad([&] { affine_dequantize(good, deq); }, {"affine_dequantize", "out"});
  Tensor deq_i = Tensor::zeros({8, 128}, DType::i32);
  expect_bad([&] { affine_dequantize(good, deq_i); }, {"affine_dequantize", "out must be"});
  Tensor emb = Tensor::zeros({2, 100}, DType::f32);
  expect_bad([&] { quantized_embedding(good, Tensor::zeros({2}, DType::i32), emb); },
             {"quantized_embedding", "out must have shape [2, 128]"});
  Tensor emb_ok = Tensor::zeros({2, 128}, DType::f32);
  expect_bad([&] { quantized_embedding(good, Tensor::zeros({2}, DType::i64), emb_ok); },
             {"quantized_embedding", "ids must be i32"});
}

}  // namespace
}  // namespace hearth::ops::testing
