// rms_norm and add_rms_norm front-ends.
#include "ops/norm.h"

#include <cmath>

#include "ops/backend.h"
#include "ops/validate.h"

namespace hearth::ops {

using namespace detail;

namespace {

// Checks shared by rms_norm and add_rms_norm: x rows of H, weight [H], out like x, eps.
void check_norm_args(const char* op, const Tensor& x, const Tensor& weight, float eps,
                     const Tensor& out) {
  check_defined(op, "x", x);
  check_defined(op, "weight", weight);
  check_defined(op, "out", out);
  if (x.ndim() < 1) fail(ErrorCode::invalid_argument, "{}: x must have at least 1 dimension", op);
  check_activation(op, "x", x);
  check_activation(op, "out", out);
  check_dtype_in(op, "weight", weight, {DType::f32, DType::f16, DType::bf16});
  check_ndim(op, "weight", weight, 1);
  if (weight.dim(0) != x.dim(-1))
    fail(ErrorCode::invalid_argument, "{}: weight has {} elements, x rows have {}", op,
         weight.dim(0), x.dim(-1));
  check_same_shape(op, "out", out, "x", x);
  check_rows_contiguous(op, "x", x);
  check_rows_contiguous(op, "out", out);
  check_contiguous(op, "weight", weight);
  if (!(eps >= 0.0f) || !std::isfinite(eps))
    fail(ErrorCode::invalid_argument, "{}: eps must be finite and >= 0, got {}", op, eps);
  Device device = x.device();
  check_device(op, "weight", weight, device);
  check_device(op, "out", out, device);
  check_no_overlap(op, "out", out, "weight", weight);
}

}  // namespace

void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  check_norm_args("rms_norm", x, weight, eps, out);
  check_alias_ok("rms_norm", "out", out, "x", x);
  backend_for(x.device()).rms_norm(x, weight, eps, out);
}

void add_rms_norm(Tensor& x, const Tensor& delta, const Tensor& weight, float eps, Tensor& normed) {
  const char* op = "add_rms_norm";
  check_norm_args(op, x, weight, eps, normed);
  check_defined(op, "delta", delta);
  check_activation(op, "delta", delta);
  check_same_shape(op, "delta", delta, "x", x);
  check_rows_contiguous(op, "delta", delta);
  check_device(op, "delta", delta, x.device());
  check_no_overlap(op, "normed", normed, "x", x);
  check_no_overlap(op, "x", x, "delta", delta);
  check_no_overlap(op, "x", x, "weight", weight);
  check_alias_ok(op, "normed", normed, "delta", delta);
  backend_for(x.device()).add_rms_norm(x, delta, weight, eps, normed);
}

}  // namespace hearth::ops
