// silu_mul and add against the reference, including gate/up as the two halves of one fused
// projection output and in-place use.
#include <fmt/format.h>

#include "op_test_util.h"
#include "ops/copy.h"
#include "ops/elementwise.h"
#include "ops/reference/reference.h"

namespace hearth::ops::testing {
namespace {

class ElementwiseTest : public OpTest {};

// silu through the vectorized exp (< 1 ulp) and one division: observed ~1e-7.
constexpr double kSiluTolerance = 1e-6;

TEST_P(ElementwiseTest, SiluMulSeparateAndFused) {
  Rng rng(41);
  for (auto [tokens, width] :
       {std::pair<int64_t, int64_t>{1, 1}, {1, 7}, {3, 8}, {5, 100}, {2, 8195}, {64, 257}}) {
    SCOPED_TRACE(fmt::format("T={} I={}", tokens, width));
    // Fused: [T, 2I] with gate = [:, :I], up = [:, I:]; values over [-20, 20] reach both tails
    // of the sigmoid.
    Tensor fused = random_float({tokens, 2 * width}, DType::f32, rng, 20.0f);
    Tensor gate = fused.slice(1, 0, width), up = fused.slice(1, width, 2 * width);
    Tensor ref = Tensor::empty({tokens, width}, DType::f32);
    reference::silu_mul(gate, up, ref);

    Tensor dfused = to_dev(fused);
    Tensor dgate = dfused.slice(1, 0, width), dup = dfused.slice(1, width, 2 * width);
    Tensor out = Tensor::empty({tokens, width}, DType::f32);
    poison(out);
    Tensor dout = to_dev(out);
    silu_mul(dgate, dup, dout);
    fetch(dout, out);
    expect_close(out, ref, kSiluTolerance);

    // In place into the gate half.
    silu_mul(dgate, dup, dgate);
    Tensor back = to_host(contiguous(dgate));
    expect_close(back, ref, kSiluTolerance);
  }
}

TEST_P(ElementwiseTest, AddIsExact) {
  Rng rng(42);
  for (Dims shape : {Dims{1}, Dims{9}, Dims{4, 33}, Dims{2, 3, 1000}, Dims{70001}}) {
    SCOPED_TRACE(shape.str());
    Tensor a = random_float(shape, DType::f32, rng), b = random_float(shape, DType::f32, rng);
    Tensor ref = Tensor::empty(shape, DType::f32);
    reference::add(a, b, ref);
    Tensor out = Tensor::empty(shape, DType::f32);
    poison(out);
    Tensor da = to_dev(a), db = to_dev(b), dout = to_dev(out);
    add(da, db, dout);
    fetch(dout, out);
    expect_close(out, ref, 0.0);  // one rounding of an exact sum: bit-identical
    add(da, db, da);              // in place
    expect_close(to_host(da), ref, 0.0);
  }
}

HEARTH_OP_TEST_ON_ALL_DEVICES(ElementwiseTest);

}  // namespace
}  // namespace hearth::ops::testing
