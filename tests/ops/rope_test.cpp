// rope (the rotation) against the reference: head dims 64/80/96/128/256, partial rotary dims,
// large positions, attention scaling, strided q/k views, in place.
#include <fmt/format.h>

#include "op_test_util.h"
#include "ops/reference/reference.h"
#include "ops/rope.h"

namespace hearth::ops::testing {
namespace {

class RopeTest : public OpTest {};

// Angles are formed exactly like the reference (float32 product); cos/sin rounded to f32 and an
// f32 rotation: observed ~1e-7.
constexpr double kTolerance = 1e-6;

TEST_P(RopeTest, MatchesReference) {
  Rng rng(71);
  struct Case {
    int64_t tokens, heads, head_dim, rotary_dim;
    double theta;
    float scaling;
  };
  const Case cases[] = {{1, 1, 64, 64, 10000.0, 1.0f},    {5, 3, 64, 64, 10000.0, 1.0f},
                        {7, 4, 80, 80, 1e6, 1.0f},        {3, 2, 96, 96, 500000.0, 1.3f},
                        {9, 8, 128, 128, 500000.0, 1.0f}, {4, 2, 256, 256, 10000.0, 0.9f},
                        {6, 3, 80, 40, 10000.0, 1.0f},    {2, 5, 128, 64, 10000.0, 1.1f},
                        {33, 2, 64, 16, 10000.0, 1.0f}};
  for (const Case& c : cases) {
    for (int layout = 0; layout < 3; ++layout) {
      for (bool in_place : {false, true}) {
        SCOPED_TRACE(fmt::format("T={} H={} D={} R={} layout={} in_place={}", c.tokens, c.heads,
                                 c.head_dim, c.rotary_dim, layout, in_place));
        RopeParams params;
        params.theta = c.theta;
        params.rotary_dim = c.rotary_dim;
        RopeFrequencies freq = rope_frequencies(params, 0);
        Tensor inv_freq = Tensor::from_vector(freq.inv_freq, {int64_t(freq.inv_freq.size())});
        std::vector<int32_t> pos;
        for (int64_t t = 0; t < c.tokens; ++t)
          pos.push_back(t == 0 ? 0 : int32_t(rng.integer(0, t % 2 ? 100 : 131072)));
        Tensor positions = Tensor::from_vector(pos, {c.tokens});
        Tensor x;
        if (layout == 0) {
          x = random_float({c.tokens, c.heads, c.head_dim}, DType::f32, rng);
        } else if (layout == 1) {  // per-head padding
          x = random_float_padded({c.tokens, c.heads, c.head_dim}, DType::f32, rng, 8);
        } else {  // heads-major storage viewed token-major
          x = random_float({c.heads, c.tokens, c.head_dim}, DType::f32, rng).transpose(0, 1);
        }
        Tensor ref = Tensor::empty(x.shape(), DType::f32);
        reference::rope(x, positions, inv_freq, c.scaling, ref);
        Tensor dx = to_dev(x);
        Tensor hout = Tensor::empty(x.shape(), DType::f32);
        poison(hout);
        Tensor dout = in_place ? dx : to_dev(hout);
        rope(dx, to_dev(positions), to_dev(inv_freq), c.scaling, dout);
        Tensor out = Tensor::empty(x.shape(), DType::f32);
        fetch(dout, out);
        expect_close(out, ref, kTolerance);
      }
    }
  }
}

HEARTH_OP_TEST_ON_ALL_DEVICES(RopeTest);

}  // namespace
}  // namespace hearth::ops::testing
