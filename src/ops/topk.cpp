// argmax and top_k front-ends.
#include "ops/topk.h"

#include "ops/backend.h"
#include "ops/validate.h"

namespace hearth::ops {

using namespace detail;

void argmax(const Tensor& x, Tensor& out) {
  const char* op = "argmax";
  check_defined(op, "x", x);
  check_defined(op, "out", out);
  check_ndim(op, "x", x, 2);
  check_dtype(op, "x", x, DType::f32);
  check_dtype(op, "out", out, DType::i32);
  check_shape(op, "out", out, {x.dim(0)});
  if (x.dim(1) == 0 && x.dim(0) > 0)
    fail(ErrorCode::invalid_argument, "argmax: x {} has no columns", x.shape().str());
  check_rows_contiguous(op, "x", x);
  check_device(op, "out", out, x.device());
  backend_for(x.device()).argmax(x, out);
}

void top_k(const Tensor& x, int k, Tensor& values, Tensor& indices) {
  const char* op = "top_k";
  check_defined(op, "x", x);
  check_defined(op, "values", values);
  check_defined(op, "indices", indices);
  check_ndim(op, "x", x, 2);
  check_dtype(op, "x", x, DType::f32);
  check_dtype(op, "values", values, DType::f32);
  check_dtype(op, "indices", indices, DType::i32);
  if (k < 1 || k > x.dim(1))
    fail(ErrorCode::invalid_argument, "top_k: k = {} must be in [1, {}] (x is {})", k, x.dim(1),
         x.shape().str());
  check_shape(op, "values", values, {x.dim(0), k});
  check_shape(op, "indices", indices, {x.dim(0), k});
  check_rows_contiguous(op, "x", x);
  check_rows_contiguous(op, "values", values);
  check_rows_contiguous(op, "indices", indices);
  check_device(op, "values", values, x.device());
  check_device(op, "indices", indices, x.device());
  check_no_overlap(op, "values", values, "x", x);
  backend_for(x.device()).top_k(x, k, values, indices);
}

}  // namespace hearth::ops
