// rms_norm against the reference: ranks 1-3, odd widths, every weight dtype, in place; rows up to
// 4096 and 8192 wide and wider (CUDA's register kernels of 4 and 8 quads a thread and its streaming
// one).
#include <fmt/format.h>

#include "op_test_util.h"
#include "ops/norm.h"
#include "ops/reference/reference.h"

namespace hearth::ops::testing {
namespace {

class RmsNormTest : public OpTest {};

// f32 sum of squares and scaling: observed <= 1e-7.
constexpr double kTolerance = 1e-6;

TEST_P(RmsNormTest, MatchesReference) {
  Rng rng(31);
  for (DType wd : {DType::f32, DType::f16, DType::bf16}) {
    for (Dims shape : {Dims{1}, Dims{7}, Dims{3, 1}, Dims{5, 64}, Dims{2, 3, 100}, Dims{17, 2051},
                       Dims{1, 4096}, Dims{300, 33}, Dims{2, 6000}, Dims{2, 9000}}) {
      for (bool in_place : {false, true}) {
        for (int64_t pad : {0, 3, 4}) {  // 4: strided rows that stay 16-byte aligned
          SCOPED_TRACE(fmt::format("w={} shape={} in_place={} pad={}", dtype_name(wd), shape.str(),
                                   in_place, pad));
          float eps = rng.uniform(1e-6f, 1e-5f);
          Tensor x = random_float_padded(shape, DType::f32, rng, shape.size() > 1 ? pad : 0,
                                         rng.uniform(0.1f, 10.0f));
          Tensor weight = random_float({shape.back()}, wd, rng);
          Tensor ref = Tensor::empty(shape, DType::f32);
          reference::rms_norm(x, weight, eps, ref);
          Tensor dx = to_dev(x);
          Tensor hout = empty_padded(shape, DType::f32, 0);
          poison(hout);
          Tensor dout = in_place ? dx : to_dev(hout);
          rms_norm(dx, to_dev(weight), eps, dout);
          Tensor out = Tensor::empty(shape, DType::f32);
          fetch(dout, out);
          expect_close(out, ref, kTolerance);
        }
      }
    }
  }
}

HEARTH_OP_TEST_ON_ALL_DEVICES(RmsNormTest);

}  // namespace
}  // namespace hearth::ops::testing
