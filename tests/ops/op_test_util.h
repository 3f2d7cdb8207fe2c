// The op test harness: random inputs, poisoned outputs, normalized error against the reference,
// and a gtest fixture parameterized over devices so every backend runs the same cases. CUDA cases
// skip (with the reason) when hearth has no CUDA backend or no GPU.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

#include "core/device.h"
#include "core/tensor.h"

namespace hearth::ops::testing {

class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  float uniform(float lo, float hi) {
    return std::uniform_real_distribution<float>(lo, hi)(engine_);
  }
  int64_t integer(int64_t lo, int64_t hi) {  // inclusive
    return std::uniform_int_distribution<int64_t>(lo, hi)(engine_);
  }
  std::mt19937_64& engine() { return engine_; }

 private:
  std::mt19937_64 engine_;
};

// Host tensor of random floats in [-scale, scale], never exactly 0 (|v| >= scale / 64), rounded to
// the dtype.
Tensor random_float(const Dims& shape, DType dtype, Rng& rng, float scale = 1.0f);
// Same values, but as a view whose rows are padded by `pad` elements (a non-contiguous tensor with
// contiguous rows, like a column slice of a fused projection). The padding is poisoned.
Tensor random_float_padded(const Dims& shape, DType dtype, Rng& rng, int64_t pad,
                           float scale = 1.0f);
// An uninitialized tensor with rows padded by `pad` elements (pad 0: contiguous).
Tensor empty_padded(const Dims& shape, DType dtype, int64_t pad);

// Fills every element (any strides; for views, only the view) with a NaN / sentinel pattern.
void poison(const Tensor& t);
// How many elements still hold the poison pattern.
int64_t count_poison(const Tensor& t);
// Poisons the whole storage behind t (padding included).
void poison_storage(const Tensor& t);

// ||out - ref|| / ||ref|| over all elements, in double; NaN when out has a NaN or inf that ref
// lacks.
double normalized_error(const Tensor& out, const Tensor& ref);
// Largest |out - ref| over all elements.
double max_abs_error(const Tensor& out, const Tensor& ref);
// Both tensors' elements as doubles, in row-major order (host tensors of any dtype).
std::vector<double> values_of(const Tensor& t);

// Fixture: GetParam() is the device under test. Inputs are built on the host, moved with to_dev
// (keeping padded-row layouts), results brought back with to_host.
class OpTest : public ::testing::TestWithParam<Device> {
 public:
  void SetUp() override;
  Device device() const { return GetParam(); }
  Tensor to_dev(const Tensor& host) const;
  Tensor to_host(const Tensor& t) const;
  // Copies a device result back into the host tensor `host` (same shape).
  void fetch(const Tensor& dev, const Tensor& host) const;
  // Expects every element of out written and ||out - ref|| / ||ref|| <= tolerance; the largest
  // error seen is printed when the test ends (to keep tolerances honest).
  void expect_close(const Tensor& out, const Tensor& ref, double tolerance);
  void TearDown() override;

 private:
  double max_error_ = 0.0;
  double tolerance_ = 0.0;
  int checks_ = 0;
};

std::string device_test_name(const ::testing::TestParamInfo<Device>& info);

}  // namespace hearth::ops::testing

// Runs a TEST_P suite on every device kind (the CUDA instance skips when unavailable).
#define HEARTH_OP_TEST_ON_ALL_DEVICES(Suite)                                          \
  INSTANTIATE_TEST_SUITE_P(Cpu, Suite, ::testing::Values(::hearth::Device::cpu()),    \
                           ::hearth::ops::testing::device_test_name);                 \
  INSTANTIATE_TEST_SUITE_P(Cuda, Suite, ::testing::Values(::hearth::Device::cuda(0)), \
                           ::hearth::ops::testing::device_test_name)
