// matmul (GEMV and GEMM paths) against the reference: f32/f16/bf16 weights, optional bias of any
// float dtype, padded x/out rows, shapes that are not multiples of the SIMD width or tile sizes.
#include <fmt/format.h>

#include "op_test_util.h"
#include "ops/matmul.h"
#include "ops/precision.h"
#include "ops/reference/reference.h"

namespace hearth::ops::testing {
namespace {

class MatmulTest : public OpTest {};

struct Shape {
  int64_t m, n, k;
};

// f32 accumulation over K <= ~1000 terms of O(1) products: observed <= 4e-7 on the CPU backend;
// a dropped or doubled term would show up as >= 1e-3.
constexpr double kTolerance = 2e-6;

void run_case(MatmulTest& t, Rng& rng, Shape s, DType w_dtype, int bias_kind, int64_t x_pad,
              int64_t out_pad) {
  SCOPED_TRACE(fmt::format("m={} n={} k={} w={} bias={} x_pad={} out_pad={}", s.m, s.n, s.k,
                           dtype_name(w_dtype), bias_kind, x_pad, out_pad));
  Tensor x = random_float_padded({s.m, s.k}, DType::f32, rng, x_pad);
  Tensor w = random_float({s.n, s.k}, w_dtype, rng);
  DType bias_dtype = bias_kind == 1 ? DType::f32 : DType::bf16;
  Tensor bias = bias_kind ? random_float({s.n}, bias_dtype, rng) : Tensor();
  Tensor out = empty_padded({s.m, s.n}, DType::f32, out_pad);
  poison(out);
  Tensor ref = Tensor::empty({s.m, s.n}, DType::f32);
  reference::matmul(x, w, ref, bias_kind ? &bias : nullptr);

  Tensor dx = t.to_dev(x), dw = t.to_dev(w), dout = t.to_dev(out);
  Tensor dbias = bias_kind ? t.to_dev(bias) : Tensor();
  matmul(dx, dw, dout, bias_kind ? &dbias : nullptr);
  t.fetch(dout, out);
  t.expect_close(out, ref, kTolerance);
}

TEST_P(MatmulTest, GemvShapes) {
  Rng rng(101);
  for (DType w : {DType::f32, DType::f16, DType::bf16}) {
    for (int64_t m : {1, 2, 3, 4, 5, 8, 11, 16}) {
      for (Shape s : {Shape{m, 1, 1}, Shape{m, 3, 7}, Shape{m, 4, 8}, Shape{m, 5, 9},
                      Shape{m, 17, 64}, Shape{m, 64, 100}, Shape{m, 33, 333}, Shape{m, 9, 1031}}) {
        run_case(*this, rng, s, w, int(rng.integer(0, 2)), rng.integer(0, 1) * 3,
                 rng.integer(0, 1) * 5);
      }
    }
  }
}

TEST_P(MatmulTest, GemmShapes) {
  Rng rng(202);
  // M past the GEMV limit, with every remainder of the 6-row micro-tile; N around the 16-column
  // panels; K around the 256 chunk.
  const Shape shapes[] = {{17, 16, 8},    {18, 16, 256},  {19, 17, 257},  {20, 33, 100},
                          {21, 1, 7},     {22, 15, 31},   {31, 100, 300}, {64, 64, 64},
                          {64, 257, 129}, {100, 48, 513}, {23, 130, 1},   {97, 71, 260}};
  for (DType w : {DType::f32, DType::f16, DType::bf16})
    for (Shape s : shapes)
      run_case(*this, rng, s, w, int(rng.integer(0, 2)), rng.integer(0, 1) * 3,
               rng.integer(0, 1) * 5);
}

// MatmulPrecision::bf16 (ops/precision.h): on CUDA a prefill GEMM with bf16 weights rounds x to
// bf16 once, so it equals the reference on the rounded x and is measurably off the exact one
// (~1e-3 for O(1) values: a bf16 rounding is 2^-9 relative); decode GEMVs and the CPU stay exact.
TEST_P(MatmulTest, Bf16PrecisionRoundsOnlyCudaPrefillInputs) {
  Rng rng(606);
  MatmulPrecisionScope scope(MatmulPrecision::bf16);
  for (Shape s : {Shape{64, 80, 96}, Shape{2, 80, 96}}) {
    SCOPED_TRACE(fmt::format("m={} n={} k={}", s.m, s.n, s.k));
    Tensor x = random_float({s.m, s.k}, DType::f32, rng);
    Tensor w = random_float({s.n, s.k}, DType::bf16, rng);
    Tensor x_rounded = Tensor::empty({s.m, s.k}, DType::f32);
    for (int64_t i = 0; i < x.numel(); ++i)
      x_rounded.data<float>()[i] = bf16_to_f32(f32_to_bf16(x.data<float>()[i]));
    Tensor exact = Tensor::empty({s.m, s.n}, DType::f32);
    Tensor rounded = Tensor::empty({s.m, s.n}, DType::f32);
    reference::matmul(x, w, exact);
    reference::matmul(x_rounded, w, rounded);
    Tensor out = Tensor::empty({s.m, s.n}, DType::f32);
    Tensor dout = to_dev(out);
    matmul(to_dev(x), to_dev(w), dout);
    fetch(dout, out);
    const bool rounds = !device().is_cpu() && s.m > 8;
    expect_close(out, rounds ? rounded : exact, kTolerance);
    if (rounds) {
      EXPECT_GT(normalized_error(out, exact), 1e-4);
    }
  }
}

TEST_P(MatmulTest, DecodeGemvVectorizedShapes) {
  // K a multiple of 8 (16-byte weight loads on CUDA) and large enough for the unrolled main loop
  // and its remainder; N around the two-rows-per-warp split (4096) and odd; x rows padded by 4
  // (16-byte aligned strided rows) and by 3 (unaligned: the scalar fallback).
  Rng rng(505);
  const Shape shapes[] = {{1, 4097, 264}, {1, 300, 4096}, {2, 4100, 520}, {3, 77, 2056},
                          {5, 129, 1032}, {8, 4096, 256}, {1, 5, 8},      {4, 9, 16}};
  for (DType w : {DType::f32, DType::f16, DType::bf16})
    for (Shape s : shapes)
      for (int64_t x_pad : {0, 3, 4})
        run_case(*this, rng, s, w, int(rng.integer(0, 2)), x_pad, rng.integer(0, 1) * 5);
}

TEST_P(MatmulTest, PrefillGemmLargeK) {
  // Thousands of terms per output and a padded x: on CUDA, cuBLAS over the exact bf16 split of x
  // (bf16 weights) or f32 cuBLAS, both held to the f32 tolerance.
  Rng rng(606);
  for (DType w : {DType::bf16, DType::f16, DType::f32})
    run_case(*this, rng, {67, 190, 2056}, w, 1, 4, 3);
  run_case(*this, rng, {9, 1000, 520}, DType::bf16, 2, 0, 0);
}

TEST_P(MatmulTest, LargerGemmCrossesTiles) {
  // Large enough for several K panels, N tiles and M blocks in every thread.
  Rng rng(303);
  for (DType w : {DType::f32, DType::bf16}) run_case(*this, rng, {150, 300, 600}, w, 1, 0, 0);
  run_case(*this, rng, {40, 530, 300}, DType::f16, 2, 3, 2);
}

TEST_P(MatmulTest, EmptyDimensions) {
  Rng rng(404);
  run_case(*this, rng, {3, 5, 0}, DType::f32, 1, 0, 0);  // K = 0: out = bias
  Tensor x = random_float({0, 8}, DType::f32, rng), w = random_float({4, 8}, DType::bf16, rng);
  Tensor out = Tensor::empty({0, 4}, DType::f32);
  Tensor dout = to_dev(out);
  matmul(to_dev(x), to_dev(w), dout);
}

HEARTH_OP_TEST_ON_ALL_DEVICES(MatmulTest);

}  // namespace
}  // namespace hearth::ops::testing
