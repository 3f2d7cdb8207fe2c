// matmul front-end: out[M, N] = x[M, K] . w[N, K]^T (+ bias).
#include "ops/matmul.h"

#include "ops/backend.h"
#include "ops/validate.h"

namespace hearth::ops {

using namespace detail;

void matmul(const Tensor& x, const Tensor& w, Tensor& out, const Tensor* bias) {
  const char* op = "matmul";
  check_defined(op, "x", x);
  check_defined(op, "w", w);
  check_defined(op, "out", out);
  check_ndim(op, "x", x, 2);
  check_ndim(op, "w", w, 2);
  check_ndim(op, "out", out, 2);
  check_dtype(op, "x", x, DType::f32);
  check_dtype_in(op, "w", w, {DType::f32, DType::f16, DType::bf16});
  check_dtype(op, "out", out, DType::f32);
  int64_t m = x.dim(0), k = x.dim(1), n = w.dim(0);
  if (w.dim(1) != k)
    fail(ErrorCode::invalid_argument, "matmul: w {} has {} columns, x {} has {} (K must match)",
         w.shape().str(), w.dim(1), x.shape().str(), k);
  if (out.dim(0) != m || out.dim(1) != n)
    fail(ErrorCode::invalid_argument,
         "matmul: out must have shape [{}, {}] (M from x, N from w), got {}", m, n,
         out.shape().str());
  check_rows_contiguous(op, "x", x);
  check_contiguous(op, "w", w);
  check_rows_contiguous(op, "out", out);
  Device device = x.device();
  check_device(op, "w", w, device);
  check_device(op, "out", out, device);
  check_no_overlap(op, "out", out, "x", x);
  check_no_overlap(op, "out", out, "w", w);
  if (bias) {
    check_defined(op, "bias", *bias);
    check_ndim(op, "bias", *bias, 1);
    check_dtype_in(op, "bias", *bias, {DType::f32, DType::f16, DType::bf16});
    if (bias->dim(0) != n)
      fail(ErrorCode::invalid_argument, "matmul: bias has {} elements, w has {} rows", bias->dim(0),
           n);
    check_device(op, "bias", *bias, device);
    check_no_overlap(op, "out", out, "bias", *bias);
  }
  backend_for(device).matmul(x, w, bias, out);
}

}  // namespace hearth::ops
