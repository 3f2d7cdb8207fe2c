// Element types of tensors, and exact conversions between the 16-bit floats and f32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace hearth {

enum class DType : uint8_t { f32, f16, bf16, i32, i64, u8, u32 };

size_t dtype_size(DType dtype);
bool is_floating(DType dtype);
// Short name used in messages and JSON ("f32", "bf16", ...).
std::string_view dtype_name(DType dtype);
// safetensors header names: "F32", "F16", "BF16", "I32", "I64", "U8", "U32".
std::optional<DType> dtype_from_safetensors(std::string_view name);
std::string_view dtype_safetensors_name(DType dtype);
// Names used on the command line and in config.json: "float32", "float16", "bfloat16"
// (also accepts the short names).
std::optional<DType> parse_dtype(std::string_view name);

// Storage types for the 16-bit floats: plain bit containers, converted explicitly.
struct BF16 {
  uint16_t bits;
};
struct F16 {
  uint16_t bits;
};

inline float bf16_to_f32(BF16 x) {
  uint32_t u = uint32_t(x.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, as PyTorch and MLX do; NaN stays a quiet NaN.
inline BF16 f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return BF16{uint16_t((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return BF16{uint16_t(u >> 16)};
}

float f16_to_f32(F16 x);
F16 f32_to_f16(float f);

template <typename T>
struct dtype_of;
template <>
struct dtype_of<float> {
  static constexpr DType value = DType::f32;
};
template <>
struct dtype_of<F16> {
  static constexpr DType value = DType::f16;
};
template <>
struct dtype_of<BF16> {
  static constexpr DType value = DType::bf16;
};
template <>
struct dtype_of<int32_t> {
  static constexpr DType value = DType::i32;
};
template <>
struct dtype_of<int64_t> {
  static constexpr DType value = DType::i64;
};
template <>
struct dtype_of<uint8_t> {
  static constexpr DType value = DType::u8;
};
template <>
struct dtype_of<uint32_t> {
  static constexpr DType value = DType::u32;
};

// Reads one element of a floating dtype as f32.
inline float load_as_f32(const void* p, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return *static_cast<const float*>(p);
    case DType::bf16:
      return bf16_to_f32(*static_cast<const BF16*>(p));
    case DType::f16:
      return f16_to_f32(*static_cast<const F16*>(p));
    default:
      return 0.0f;
  }
}

}  // namespace hearth
