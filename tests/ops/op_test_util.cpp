// The op test harness (see op_test_util.h).
#include "op_test_util.h"

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "ops/backend.h"
#include "ops/copy.h"
#include "ops/reference/reference.h"

namespace hearth::ops::testing {
namespace {

constexpr uint32_t kPoisonF32 = 0x7fc0deadu;
constexpr uint16_t kPoisonBF16 = 0x7fc5u;
constexpr uint16_t kPoisonF16 = 0x7e5du;
constexpr uint32_t kPoison32 = 0x7eadbeefu;

// Calls fn(byte pointer) for every element of t (any strides).
template <typename Fn>
void for_each_element(const Tensor& t, Fn&& fn) {
  char* base = static_cast<char*>(t.raw_data());
  std::array<int64_t, Dims::kMaxDims> index{};
  for (int64_t n = 0; n < t.numel(); ++n) {
    int64_t off = 0;
    for (int d = 0; d < t.ndim(); ++d) off += index[d] * t.stride(d);
    fn(base + off * int64_t(t.element_size()));
    for (int d = t.ndim() - 1; d >= 0; --d) {
      if (++index[d] < t.dim(d)) break;
      index[d] = 0;
    }
  }
}

void poison_element(char* p, DType dtype) {
  switch (dtype) {
    case DType::f32:
    case DType::i32:
    case DType::u32: {
      uint32_t v = dtype == DType::f32 ? kPoisonF32 : kPoison32;
      std::memcpy(p, &v, 4);
      break;
    }
    case DType::bf16:
      std::memcpy(p, &kPoisonBF16, 2);
      break;
    case DType::f16:
      std::memcpy(p, &kPoisonF16, 2);
      break;
    case DType::i64: {
      int64_t v = int64_t(kPoison32) << 16;
      std::memcpy(p, &v, 8);
      break;
    }
    case DType::u8:
      *p = char(0xa5);
      break;
  }
}

bool is_poison(const char* p, DType dtype) {
  char probe[8];
  poison_element(probe, dtype);
  return std::memcmp(p, probe, dtype_size(dtype)) == 0;
}

}  // namespace

Tensor random_float(const Dims& shape, DType dtype, Rng& rng, float scale) {
  Tensor t = Tensor::empty(shape, dtype);
  for_each_element(t, [&](char* p) {
    float mag = rng.uniform(scale / 64.0f, scale);
    float v = rng.uniform(0.0f, 1.0f) < 0.5f ? -mag : mag;
    switch (dtype) {
      case DType::f32:
        std::memcpy(p, &v, 4);
        break;
      case DType::f16:
        *reinterpret_cast<F16*>(p) = f32_to_f16(v);
        break;
      case DType::bf16:
        *reinterpret_cast<BF16*>(p) = f32_to_bf16(v);
        break;
      default:
        HEARTH_CHECK(false, "random_float of {}", dtype_name(dtype));
    }
  });
  return t;
}

Tensor empty_padded(const Dims& shape, DType dtype, int64_t pad) {
  if (pad == 0) return Tensor::empty(shape, dtype);
  Dims wide = shape;
  wide[wide.size() - 1] += pad;
  Tensor base = Tensor::empty(wide, dtype);
  poison_storage(base);
  return base.slice(-1, 0, shape.back());
}

Tensor random_float_padded(const Dims& shape, DType dtype, Rng& rng, int64_t pad, float scale) {
  Tensor view = empty_padded(shape, dtype, pad);
  reference::copy(random_float(shape, dtype, rng, scale), view);
  return view;
}

void poison(const Tensor& t) {
  HEARTH_CHECK(t.device().is_cpu(), "poison() writes host memory; poison before to_dev()");
  for_each_element(t, [&](char* p) { poison_element(p, t.dtype()); });
}

void poison_storage(const Tensor& t) {
  HEARTH_CHECK(t.device().is_cpu(), "poison_storage() writes host memory");
  size_t es = t.element_size();
  char* base = static_cast<char*>(t.storage()->data());
  for (size_t off = 0; off + es <= t.storage()->size_bytes(); off += es)
    poison_element(base + off, t.dtype());
}

int64_t count_poison(const Tensor& t) {
  HEARTH_CHECK(t.device().is_cpu(), "count_poison() reads host memory; fetch first");
  int64_t n = 0;
  for_each_element(t, [&](char* p) { n += is_poison(p, t.dtype()); });
  return n;
}

std::vector<double> values_of(const Tensor& t) {
  std::vector<double> v;
  v.reserve(size_t(t.numel()));
  for_each_element(t, [&](char* p) {
    switch (t.dtype()) {
      case DType::i32:
        v.push_back(*reinterpret_cast<const int32_t*>(p));
        break;
      case DType::i64:
        v.push_back(double(*reinterpret_cast<const int64_t*>(p)));
        break;
      case DType::u8:
        v.push_back(*reinterpret_cast<const uint8_t*>(p));
        break;
      case DType::u32:
        v.push_back(*reinterpret_cast<const uint32_t*>(p));
        break;
      default:
        v.push_back(load_as_f32(p, t.dtype()));
    }
  });
  return v;
}

double normalized_error(const Tensor& out, const Tensor& ref) {
  HEARTH_CHECK(out.shape() == ref.shape(), "comparing {} with {}", out.describe(), ref.describe());
  std::vector<double> a = values_of(out), b = values_of(ref);
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && !std::isnan(b[i])) return NAN;
    if (std::isinf(a[i]) || std::isinf(b[i])) {
      if (a[i] != b[i]) return NAN;
      continue;
    }
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    norm += b[i] * b[i];
  }
  if (norm == 0.0) return diff == 0.0 ? 0.0 : INFINITY;
  return std::sqrt(diff / norm);
}

double max_abs_error(const Tensor& out, const Tensor& ref) {
  std::vector<double> a = values_of(out), b = values_of(ref);
  double m = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) != std::isnan(b[i])) return NAN;
    if (!std::isnan(a[i])) m = std::max(m, std::abs(a[i] - b[i]));
  }
  return m;
}

void OpTest::SetUp() {
  try {
    backend_for(device());
  } catch (const Error& e) {
    GTEST_SKIP() << "no backend for " << device().str() << " (" << e.what()
                 << "); run this case on a machine with hearth built for it";
  }
}

Tensor OpTest::to_dev(const Tensor& host) const {
  if (device() == host.device()) return host;
  // Keep a padded-row layout: allocate the wider base on the device and copy into the view.
  if (!host.is_contiguous() && host.ndim() >= 2 && host.stride(-1) == 1 &&
      host.stride(-2) > host.dim(-1)) {
    Dims wide = host.shape();
    wide[wide.size() - 1] = host.stride(-2);
    Tensor base = Tensor::empty(wide, host.dtype(), device());
    Tensor view = base.slice(-1, 0, host.dim(-1));
    if (view.strides() == host.strides()) {
      copy(host, view);
      return view;
    }
  }
  return to_device(host, device());
}

Tensor OpTest::to_host(const Tensor& t) const {
  return to_device(t, Device::cpu());
}

void OpTest::fetch(const Tensor& dev, const Tensor& host) const {
  if (dev.device() == host.device() && dev.raw_data() == host.raw_data()) return;
  Tensor h = host;
  copy(dev, h);
}

void OpTest::expect_close(const Tensor& out, const Tensor& ref, double tolerance) {
  EXPECT_EQ(count_poison(out), 0) << "elements of the output were not written";
  double err = normalized_error(out, ref);
  EXPECT_LE(err, tolerance) << "normalized error";
  if (!(err <= max_error_)) max_error_ = err;
  tolerance_ = std::max(tolerance_, tolerance);
  ++checks_;
}

void OpTest::TearDown() {
  if (checks_ > 0)
    std::printf("  [%d checks] max normalized error %.3g (tolerance %.3g)\n", checks_, max_error_,
                tolerance_);
}

std::string device_test_name(const ::testing::TestParamInfo<Device>& info) {
  return info.param.is_cpu() ? "cpu" : "cuda" + std::to_string(info.param.index);
}

}  // namespace hearth::ops::testing
