// Reference copy: element by element through a multi-index, floats via float (exact for every
// source dtype) and core's round-to-nearest-even narrowing, integers byte for byte.
#include <array>
#include <cstring>

#include "ops/reference/reference.h"

namespace hearth::ops::reference {

void copy(const Tensor& src, Tensor& dst) {
  HEARTH_CHECK(src.shape() == dst.shape(), "copy {} to {}", src.describe(), dst.describe());
  const char* s = static_cast<const char*>(src.raw_data());
  char* d = static_cast<char*>(dst.raw_data());
  std::array<int64_t, Dims::kMaxDims> index{};
  for (int64_t n = 0; n < src.numel(); ++n) {
    int64_t so = 0, doff = 0;
    for (int i = 0; i < src.ndim(); ++i) {
      so += index[i] * src.stride(i);
      doff += index[i] * dst.stride(i);
    }
    const char* sp = s + so * int64_t(src.element_size());
    char* dp = d + doff * int64_t(dst.element_size());
    if (is_floating(src.dtype())) {
      float v = load_as_f32(sp, src.dtype());
      switch (dst.dtype()) {
        case DType::f32:
          std::memcpy(dp, &v, 4);
          break;
        case DType::f16:
          *reinterpret_cast<F16*>(dp) = f32_to_f16(v);
          break;
        case DType::bf16:
          *reinterpret_cast<BF16*>(dp) = f32_to_bf16(v);
          break;
        default:
          HEARTH_CHECK(false, "copy float to {}", dtype_name(dst.dtype()));
      }
    } else {
      HEARTH_CHECK(src.dtype() == dst.dtype());
      std::memcpy(dp, sp, src.element_size());
    }
    for (int i = src.ndim() - 1; i >= 0; --i) {
      if (++index[i] < src.dim(i)) break;
      index[i] = 0;
    }
  }
}

}  // namespace hearth::ops::reference
