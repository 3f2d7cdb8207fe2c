// softmax and log_softmax against the reference: widths around the SIMD width up to a vocabulary,
// large logit ranges, -inf entries, in place.
#include <fmt/format.h>

#include <limits>

#include "op_test_util.h"
#include "ops/reference/reference.h"
#include "ops/softmax.h"

namespace hearth::ops::testing {
namespace {

class SoftmaxTest : public OpTest {};

// Vectorized exp (< 1 ulp) and an f32 sum over up to 128K terms: observed ~1e-7.
constexpr double kTolerance = 1e-6;

TEST_P(SoftmaxTest, MatchesReference) {
  Rng rng(51);
  for (bool log : {false, true}) {
    for (Dims shape : {Dims{1}, Dims{7}, Dims{3, 8}, Dims{2, 9}, Dims{4, 100}, Dims{2, 3, 33},
                       Dims{1, 128261}}) {
      for (bool in_place : {false, true}) {
        SCOPED_TRACE(fmt::format("{} shape={} in_place={}", log ? "log_softmax" : "softmax",
                                 shape.str(), in_place));
        Tensor x = random_float(shape, DType::f32, rng, rng.uniform(1.0f, 30.0f));
        float* xp = x.data<float>();
        if (x.numel() > 4) xp[1] = -std::numeric_limits<float>::infinity();  // masked entry
        Tensor ref = Tensor::empty(shape, DType::f32);
        if (log)
          reference::log_softmax(x, ref);
        else
          reference::softmax(x, ref);
        Tensor dx = to_dev(x);
        Tensor hout = Tensor::empty(shape, DType::f32);
        poison(hout);
        Tensor dout = in_place ? dx : to_dev(hout);
        if (log)
          log_softmax(dx, dout);
        else
          softmax(dx, dout);
        Tensor out = Tensor::empty(shape, DType::f32);
        fetch(dout, out);
        expect_close(out, ref, kTolerance);
      }
    }
  }
}

HEARTH_OP_TEST_ON_ALL_DEVICES(SoftmaxTest);

}  // namespace
}  // namespace hearth::ops::testing
