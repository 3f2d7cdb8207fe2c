// softmax and log_softmax front-ends.
#include "ops/softmax.h"

#include "ops/backend.h"
#include "ops/validate.h"

namespace hearth::ops {

using namespace detail;
namespace {

void check_softmax_args(const char* op, const Tensor& x, const Tensor& out) {
  check_defined(op, "x", x);
  check_defined(op, "out", out);
  if (x.ndim() < 1) fail(ErrorCode::invalid_argument, "{}: x must have at least 1 dimension", op);
  check_dtype(op, "x", x, DType::f32);
  check_dtype(op, "out", out, DType::f32);
  check_same_shape(op, "out", out, "x", x);
  if (x.dim(-1) == 0) {
    int64_t rows = 1;
    for (int d = 0; d + 1 < x.ndim(); ++d) rows *= x.dim(d);
    if (rows > 0)
      fail(ErrorCode::invalid_argument, "{}: x {} has an empty last dimension", op,
           x.shape().str());
  }
  check_rows_contiguous(op, "x", x);
  check_rows_contiguous(op, "out", out);
  check_device(op, "out", out, x.device());
  check_alias_ok(op, "out", out, "x", x);
}

}  // namespace

void softmax(const Tensor& x, Tensor& out) {
  check_softmax_args("softmax", x, out);
  backend_for(x.device()).softmax(x, out);
}

void log_softmax(const Tensor& x, Tensor& out) {
  check_softmax_args("log_softmax", x, out);
  backend_for(x.device()).log_softmax(x, out);
}

}  // namespace hearth::ops
