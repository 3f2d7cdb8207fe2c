#include "core/tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace hearth {
namespace {

TEST(Tensor, EmptyHasContiguousStrides) {
  Tensor t = Tensor::empty({2, 3, 4}, DType::f32);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.strides(), Dims({12, 4, 1}));
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.nbytes(), 96u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % kHostAlignment, 0u);
}

TEST(Tensor, SliceSelectTransposeAreViews) {
  std::vector<float> v(24);
  for (int i = 0; i < 24; ++i) v[i] = float(i);
  Tensor t = Tensor::from_vector(v, {2, 3, 4});
  Tensor s = t.slice(1, 1, 3);
  EXPECT_EQ(s.shape(), Dims({2, 2, 4}));
  EXPECT_FALSE(s.is_contiguous());
  EXPECT_EQ(s.to_vector<float>()[0], 4.0f);
  EXPECT_EQ(s.storage(), t.storage());
  Tensor row = t.select(0, 1);
  EXPECT_EQ(row.shape(), Dims({3, 4}));
  EXPECT_EQ(row.to_vector<float>()[0], 12.0f);
  Tensor tr = t.transpose(1, 2);
  EXPECT_EQ(tr.shape(), Dims({2, 4, 3}));
  std::vector<float> trv = tr.to_vector<float>();
  EXPECT_EQ(trv[1], 4.0f);  // tr[0][0][1] = t[0][1][0]
  Tensor r = t.reshape({6, -1});
  EXPECT_EQ(r.shape(), Dims({6, 4}));
  EXPECT_EQ(t.unsqueeze(0).shape(), Dims({1, 2, 3, 4}));
}

TEST(Tensor, BadViewsAreInternalErrors) {
  Tensor t = Tensor::empty({2, 3}, DType::f32);
  EXPECT_THROW(t.slice(1, 2, 5), Error);
  EXPECT_THROW(t.transpose(0, 1).reshape({6}), Error);
  EXPECT_THROW(t.data<BF16>(), Error);
}

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f).bits, 0x3f80);
  // 1 + 2^-8 is exactly half way between two bf16 values: ties to even (down).
  EXPECT_EQ(f32_to_bf16(1.00390625f).bits, 0x3f80);
  // 1 + 3*2^-8 is half way too: ties to even (up).
  EXPECT_EQ(f32_to_bf16(1.01171875f).bits, 0x3f82);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(bf16_to_f32(BF16{0xc040}), -3.0f);
}

TEST(DType, F16RoundTripsEveryHalf) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    F16 h{uint16_t(bits)};
    float f = f16_to_f32(h);
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_f16(f).bits, h.bits) << bits;
  }
  EXPECT_EQ(f16_to_f32(F16{0x3c00}), 1.0f);
  EXPECT_EQ(f16_to_f32(F16{0x0001}), std::ldexp(1.0f, -24));
  EXPECT_EQ(f32_to_f16(65520.0f).bits, 0x7c00);  // rounds to infinity
  EXPECT_EQ(f32_to_f16(65519.0f).bits, 0x7bff);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)).bits, 0x0000);  // tie to even: zero
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)).bits, 0x0002);  // 1.5 units: tie to even (2)
}

TEST(DType, Names) {
  EXPECT_EQ(dtype_from_safetensors("BF16"), DType::bf16);
  EXPECT_FALSE(dtype_from_safetensors("F8_E4M3").has_value());
  EXPECT_EQ(parse_dtype("bfloat16"), DType::bf16);
  EXPECT_EQ(dtype_size(DType::i64), 8u);
}

}  // namespace
}  // namespace hearth
