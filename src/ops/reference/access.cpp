// Element access for the references: one element at a time through the strides, converted
// through double. Slow on purpose; nothing here should need to be trusted beyond its few lines.
#include <initializer_list>

#include "ops/reference/reference.h"

namespace hearth::ops::reference {
namespace {

char* element_ptr(const Tensor& t, std::initializer_list<int64_t> index) {
  HEARTH_CHECK(int(index.size()) == t.ndim(), "index of {} dims into {}", index.size(),
               t.describe());
  HEARTH_CHECK(t.device().is_cpu(), "reference ops need host tensors, got {}", t.describe());
  int64_t offset = 0;
  int d = 0;
  for (int64_t i : index) {
    HEARTH_CHECK(i >= 0 && i < t.dim(d), "index {} out of range in dim {} of {}", i, d,
                 t.describe());
    offset += i * t.stride(d);
    ++d;
  }
  return static_cast<char*>(t.raw_data()) + offset * int64_t(t.element_size());
}

}  // namespace

double get(const Tensor& t, std::initializer_list<int64_t> index) {
  const char* p = element_ptr(t, index);
  switch (t.dtype()) {
    case DType::f32:
      return *reinterpret_cast<const float*>(p);
    case DType::f16:
      return f16_to_f32(*reinterpret_cast<const F16*>(p));
    case DType::bf16:
      return bf16_to_f32(*reinterpret_cast<const BF16*>(p));
    case DType::i32:
      return *reinterpret_cast<const int32_t*>(p);
    case DType::i64:
      return double(*reinterpret_cast<const int64_t*>(p));
    case DType::u8:
      return *reinterpret_cast<const uint8_t*>(p);
    case DType::u32:
      return *reinterpret_cast<const uint32_t*>(p);
  }
  return 0.0;
}

int64_t get_int(const Tensor& t, std::initializer_list<int64_t> index) {
  const char* p = element_ptr(t, index);
  switch (t.dtype()) {
    case DType::i32:
      return *reinterpret_cast<const int32_t*>(p);
    case DType::i64:
      return *reinterpret_cast<const int64_t*>(p);
    case DType::u8:
      return *reinterpret_cast<const uint8_t*>(p);
    case DType::u32:
      return *reinterpret_cast<const uint32_t*>(p);
    default:
      HEARTH_CHECK(false, "get_int of a {} tensor", dtype_name(t.dtype()));
  }
  return 0;
}

void set(const Tensor& t, std::initializer_list<int64_t> index, double value) {
  char* p = element_ptr(t, index);
  switch (t.dtype()) {
    case DType::f32:
      *reinterpret_cast<float*>(p) = float(value);
      break;
    case DType::f16:
      *reinterpret_cast<F16*>(p) = f32_to_f16(float(value));
      break;
    case DType::bf16:
      *reinterpret_cast<BF16*>(p) = f32_to_bf16(float(value));
      break;
    case DType::i32:
      *reinterpret_cast<int32_t*>(p) = int32_t(value);
      break;
    case DType::i64:
      *reinterpret_cast<int64_t*>(p) = int64_t(value);
      break;
    case DType::u8:
      *reinterpret_cast<uint8_t*>(p) = uint8_t(value);
      break;
    case DType::u32:
      *reinterpret_cast<uint32_t*>(p) = uint32_t(value);
      break;
  }
}

}  // namespace hearth::ops::reference
