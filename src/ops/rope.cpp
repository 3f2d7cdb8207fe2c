// rope front-end (the rotation). The frequency tables are in rope_frequencies.cpp.
#include "ops/rope.h"

#include <cmath>

#include "ops/backend.h"
#include "ops/validate.h"

namespace hearth::ops {

using namespace detail;

void rope(const Tensor& x, const Tensor& positions, const Tensor& inv_freq, float attention_scaling,
          Tensor& out) {
  const char* op = "rope";
  check_defined(op, "x", x);
  check_defined(op, "positions", positions);
  check_defined(op, "inv_freq", inv_freq);
  check_defined(op, "out", out);
  check_ndim(op, "x", x, 3);
  check_dtype(op, "x", x, DType::f32);
  check_dtype(op, "out", out, DType::f32);
  check_dtype(op, "positions", positions, DType::i32);
  check_dtype(op, "inv_freq", inv_freq, DType::f32);
  check_shape(op, "positions", positions, {x.dim(0)});
  check_ndim(op, "inv_freq", inv_freq, 1);
  if (inv_freq.dim(0) * 2 > x.dim(2))
    fail(ErrorCode::invalid_argument,
         "rope: inv_freq has {} entries, so {} rotary dims, more than head_dim {}", inv_freq.dim(0),
         inv_freq.dim(0) * 2, x.dim(2));
  check_same_shape(op, "out", out, "x", x);
  check_rows_contiguous(op, "x", x);
  check_rows_contiguous(op, "out", out);
  check_contiguous(op, "inv_freq", inv_freq);
  if (!std::isfinite(attention_scaling))
    fail(ErrorCode::invalid_argument, "rope: attention_scaling must be finite, got {}",
         attention_scaling);
  Device device = x.device();
  check_device(op, "positions", positions, device);
  check_device(op, "inv_freq", inv_freq, device);
  check_device(op, "out", out, device);
  check_alias_ok(op, "out", out, "x", x);
  backend_for(device).rope(x, positions, inv_freq, attention_scaling, out);
}

}  // namespace hearth::ops
