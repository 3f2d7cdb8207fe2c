// rms_norm front-end.
#include "ops/norm.h"

#include <cmath>

#include "ops/backend.h"
#include "ops/validate.h"

namespace hearth::ops {

using namespace detail;

void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  const char* op = "rms_norm";
  check_defined(op, "x", x);
  check_defined(op, "weight", weight);
  check_defined(op, "out", out);
  if (x.ndim() < 1) fail(ErrorCode::invalid_argument, "rms_norm: x must have at least 1 dimension");
  check_dtype(op, "x", x, DType::f32);
  check_dtype(op, "out", out, DType::f32);
  check_dtype_in(op, "weight", weight, {DType::f32, DType::f16, DType::bf16});
  check_ndim(op, "weight", weight, 1);
  if (weight.dim(0) != x.dim(-1))
    fail(ErrorCode::invalid_argument, "rms_norm: weight has {} elements, x rows have {}",
         weight.dim(0), x.dim(-1));
  check_same_shape(op, "out", out, "x", x);
  check_rows_contiguous(op, "x", x);
  check_rows_contiguous(op, "out", out);
  check_contiguous(op, "weight", weight);
  if (!(eps >= 0.0f) || !std::isfinite(eps))
    fail(ErrorCode::invalid_argument, "rms_norm: eps must be finite and >= 0, got {}", eps);
  Device device = x.device();
  check_device(op, "weight", weight, device);
  check_device(op, "out", out, device);
  check_alias_ok(op, "out", out, "x", x);
  check_no_overlap(op, "out", out, "weight", weight);
  backend_for(device).rms_norm(x, weight, eps, out);
}

}  // namespace hearth::ops
