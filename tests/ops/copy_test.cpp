// copy / contiguous / cast / to_device against the reference: every float dtype pair, integer
// dtypes, transposed and sliced sources and destinations. Conversions are exact functions of the
// input (round to nearest even), so results must match bit for bit.
#include <fmt/format.h>

#include <cstring>

#include "op_test_util.h"
#include "ops/copy.h"
#include "ops/reference/reference.h"

namespace hearth::ops::testing {
namespace {

class CopyTest : public OpTest {};

bool same_bits(const Tensor& a, const Tensor& b) {
  Tensor ca = Tensor::empty(a.shape(), a.dtype()), cb = Tensor::empty(b.shape(), b.dtype());
  reference::copy(a, ca);
  reference::copy(b, cb);
  return a.dtype() == b.dtype() && std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) == 0;
}

TEST_P(CopyTest, FloatConversionsAllLayouts) {
  Rng rng(11);
  const DType floats[] = {DType::f32, DType::f16, DType::bf16};
  int checks = 0;
  for (DType from : floats) {
    for (DType to : floats) {
      for (Dims shape : {Dims{1}, Dims{7}, Dims{3, 5}, Dims{4, 9, 17}, Dims{2, 3, 4, 33},
                         Dims{1000, 3}, Dims{70000}}) {
        SCOPED_TRACE(
            fmt::format("{} -> {} shape {}", dtype_name(from), dtype_name(to), shape.str()));
        // Values spanning many binades, so rounding and subnormal paths are exercised.
        Tensor src = random_float(shape, from, rng, rng.uniform(1e-3f, 1e3f));
        Tensor dst = Tensor::empty(shape, to);
        poison(dst);
        Tensor ref = Tensor::empty(shape, to);
        reference::copy(src, ref);
        Tensor ddst = to_dev(dst);
        copy(to_dev(src), ddst);
        fetch(ddst, dst);
        EXPECT_EQ(count_poison(dst), 0);
        EXPECT_TRUE(same_bits(dst, ref));
        ++checks;
      }
    }
  }
  EXPECT_EQ(checks, 63);
}

TEST_P(CopyTest, StridedSourcesAndDestinations) {
  Rng rng(12);
  for (DType from : {DType::f32, DType::bf16}) {
    for (DType to : {DType::f32, DType::f16}) {
      Tensor base = random_float({6, 10, 12}, from, rng);
      // A transposed, sliced view: no dimension is contiguous in the usual way.
      Tensor src = base.transpose(0, 2).slice(1, 2, 9).slice(0, 1, 11);  // [10, 7, 6]
      Tensor dst_base = Tensor::empty({10, 7, 9}, to);
      poison(dst_base);
      Tensor dst = dst_base.slice(2, 1, 7);  // rows padded on both sides
      Tensor ref = Tensor::empty(src.shape(), to);
      reference::copy(src, ref);
      if (device().is_cpu()) {
        copy(src, dst);
        EXPECT_TRUE(same_bits(dst, ref));
        EXPECT_EQ(count_poison(dst), 0);
        // The padding around the view stays untouched.
        EXPECT_EQ(count_poison(dst_base), 10 * 7 * 3);
      } else {
        // The same view taken on the device: the strided, converting copy runs there.
        Tensor dsrc = to_dev(base).transpose(0, 2).slice(1, 2, 9).slice(0, 1, 11);
        Tensor back = to_host(cast(contiguous(dsrc), to));
        EXPECT_TRUE(same_bits(back, ref));
        Tensor ddst_base = to_dev(dst_base);
        Tensor ddst = ddst_base.slice(2, 1, 7);
        copy(dsrc, ddst);
        Tensor host_base = to_host(ddst_base);
        EXPECT_TRUE(same_bits(host_base.slice(2, 1, 7), ref));
        EXPECT_EQ(count_poison(host_base), 10 * 7 * 3);  // padding untouched
      }
    }
  }
}

TEST_P(CopyTest, IntegersAreCopiedExactly) {
  std::vector<int32_t> v32 = {0, -1, 7, 2147483647, -2147483647 - 1, 42};
  Tensor a = Tensor::from_vector(v32, {2, 3});
  Tensor t = a.transpose(0, 1);  // [3, 2]
  Tensor c = to_host(contiguous(to_dev(t)));
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.to_vector<int32_t>(), t.to_vector<int32_t>());
  std::vector<int64_t> v64 = {int64_t(1) << 60, -3, 5};
  Tensor b = Tensor::from_vector(v64, {3});
  Tensor d = Tensor::empty({3}, DType::i64);
  Tensor dd = to_dev(d);
  copy(to_dev(b), dd);
  fetch(dd, d);
  EXPECT_EQ(d.to_vector<int64_t>(), v64);
}

TEST_P(CopyTest, CastAndContiguousConveniences) {
  Rng rng(13);
  Tensor x = random_float({5, 6}, DType::f32, rng);
  Tensor dx = to_dev(x);
  Tensor h = cast(dx, DType::bf16);
  EXPECT_EQ(h.dtype(), DType::bf16);
  EXPECT_EQ(h.device(), device());
  Tensor ref = Tensor::empty({5, 6}, DType::bf16);
  reference::copy(x, ref);
  EXPECT_TRUE(same_bits(to_host(h), ref));
  // Same dtype / already contiguous: the tensor itself comes back.
  EXPECT_EQ(cast(dx, DType::f32).raw_data(), dx.raw_data());
  EXPECT_EQ(contiguous(dx).raw_data(), dx.raw_data());
  Tensor tt = contiguous(dx.transpose(0, 1));
  EXPECT_TRUE(tt.is_contiguous());
  EXPECT_EQ(to_host(tt).to_vector<float>(), x.transpose(0, 1).to_vector<float>());
}

TEST_P(CopyTest, SpecialValuesSurviveConversion) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> v = {0.0f,        -0.0f, inf,   -inf,    NAN,       65504.0f,
                          65520.0f,    1e-8f, 6e-5f, 3.0e38f, -1.0e-40f, 1.00390625f,
                          1.01171875f, 0.1f,  -2.5f, 33.3f};
  Tensor src = Tensor::from_vector(v, {int64_t(v.size())});
  for (DType to : {DType::f16, DType::bf16}) {
    Tensor ref = Tensor::empty(src.shape(), to);
    reference::copy(src, ref);
    Tensor out = to_host(cast(to_dev(src), to));
    EXPECT_TRUE(same_bits(out, ref)) << dtype_name(to);
    // And back to f32.
    Tensor back_ref = Tensor::empty(src.shape(), DType::f32);
    reference::copy(ref, back_ref);
    EXPECT_TRUE(same_bits(to_host(cast(to_dev(ref), DType::f32)), back_ref));
  }
}

HEARTH_OP_TEST_ON_ALL_DEVICES(CopyTest);

}  // namespace
}  // namespace hearth::ops::testing
