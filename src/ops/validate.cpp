// Argument checks shared by the op front-ends.
#include "ops/validate.h"

#include <string>

namespace hearth::ops::detail {
namespace {

// [first byte, one past the last byte] a tensor can touch.
std::pair<const char*, const char*> byte_span(const Tensor& t) {
  const char* base = static_cast<const char*>(t.raw_data());
  int64_t lo = 0, hi = 0;
  for (int d = 0; d < t.ndim(); ++d) {
    if (t.dim(d) == 0) return {base, base};
    int64_t reach = (t.dim(d) - 1) * t.stride(d);
    (reach < 0 ? lo : hi) += reach;
  }
  int64_t es = int64_t(t.element_size());
  return {base + lo * es, base + (hi + 1) * es};
}

// True when a and b certainly share memory. Exact for contiguous tensors; strided views whose
// byte ranges interleave (e.g. the two column halves of a fused projection) are given the benefit
// of the doubt, since deciding their overlap exactly is not worth it here.
bool overlaps(const Tensor& a, const Tensor& b) {
  if (a.storage() != b.storage()) return false;
  if (!a.is_contiguous() || !b.is_contiguous()) {
    if (a.raw_data() == b.raw_data() && a.numel() > 0 && b.numel() > 0) return true;
    return false;
  }
  auto [a0, a1] = byte_span(a);
  auto [b0, b1] = byte_span(b);
  return a0 < b1 && b0 < a1;
}

}  // namespace

void check_defined(const char* op, const char* name, const Tensor& t) {
  if (!t.defined()) fail(ErrorCode::invalid_argument, "{}: {} is an undefined tensor", op, name);
}

void check_dtype(const char* op, const char* name, const Tensor& t, DType expected) {
  if (t.dtype() != expected)
    fail(ErrorCode::invalid_argument, "{}: {} must be {}, got {}", op, name, dtype_name(expected),
         t.describe());
}

void check_dtype_in(const char* op, const char* name, const Tensor& t,
                    std::initializer_list<DType> allowed) {
  for (DType d : allowed)
    if (t.dtype() == d) return;
  std::string list;
  for (DType d : allowed) {
    if (!list.empty()) list.push_back('/');
    list.append(dtype_name(d));
  }
  fail(ErrorCode::invalid_argument, "{}: {} must be {}, got {}", op, name, list, t.describe());
}

void check_activation(const char* op, const char* name, const Tensor& t) {
  check_dtype_in(op, name, t, {DType::f32, DType::bf16});
}

void check_ndim(const char* op, const char* name, const Tensor& t, int ndim) {
  if (t.ndim() != ndim)
    fail(ErrorCode::invalid_argument, "{}: {} must have {} dimensions, got {}", op, name, ndim,
         t.describe());
}

void check_shape(const char* op, const char* name, const Tensor& t, const Dims& expected) {
  if (!(t.shape() == expected))
    fail(ErrorCode::invalid_argument, "{}: {} must have shape {}, got {}", op, name, expected.str(),
         t.describe());
}

void check_same_shape(const char* op, const char* name, const Tensor& t, const char* ref_name,
                      const Tensor& ref) {
  if (!(t.shape() == ref.shape()))
    fail(ErrorCode::invalid_argument, "{}: {} has shape {}, {} has {}", op, name, t.shape().str(),
         ref_name, ref.shape().str());
}

void check_contiguous(const char* op, const char* name, const Tensor& t) {
  if (!t.is_contiguous())
    fail(ErrorCode::invalid_argument, "{}: {} must be contiguous, got strides {} for {}", op, name,
         t.strides().str(), t.describe());
}

void check_rows_contiguous(const char* op, const char* name, const Tensor& t) {
  if (!t.has_contiguous_rows())
    fail(ErrorCode::invalid_argument,
         "{}: {} must have a contiguous last dimension, got strides {} for {}", op, name,
         t.strides().str(), t.describe());
}

void check_device(const char* op, const char* name, const Tensor& t, Device device) {
  if (t.device() != device)
    fail(ErrorCode::invalid_argument, "{}: {} is on {}, expected {}", op, name, t.device().str(),
         device.str());
}

void check_alias_ok(const char* op, const char* dst_name, const Tensor& dst, const char* src_name,
                    const Tensor& src) {
  if (!overlaps(dst, src)) return;
  if (dst.raw_data() == src.raw_data() && dst.strides() == src.strides() &&
      dst.dtype() == src.dtype())
    return;
  fail(ErrorCode::invalid_argument, "{}: {} partly overlaps {} (only exact aliasing is allowed)",
       op, dst_name, src_name);
}

void check_no_overlap(const char* op, const char* dst_name, const Tensor& dst, const char* src_name,
                      const Tensor& src) {
  if (overlaps(dst, src))
    fail(ErrorCode::invalid_argument, "{}: {} overlaps {} in memory", op, dst_name, src_name);
}

void check_bias(const char* op, const char* bias_name, const Tensor& bias, int64_t n,
                const char* w_name, Device device, const char* out_name, const Tensor& out) {
  check_defined(op, bias_name, bias);
  check_ndim(op, bias_name, bias, 1);
  check_dtype_in(op, bias_name, bias, {DType::f32, DType::f16, DType::bf16});
  if (bias.dim(0) != n)
    fail(ErrorCode::invalid_argument, "{}: {} has {} elements, {} has {} rows", op, bias_name,
         bias.dim(0), w_name, n);
  check_device(op, bias_name, bias, device);
  check_no_overlap(op, out_name, out, bias_name, bias);
}

}  // namespace hearth::ops::detail
