// silu_mul and add front-ends.
#include "ops/elementwise.h"

#include "ops/backend.h"
#include "ops/validate.h"

namespace hearth::ops {

using namespace detail;

void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) {
  const char* op = "silu_mul";
  check_defined(op, "gate", gate);
  check_defined(op, "up", up);
  check_defined(op, "out", out);
  check_ndim(op, "gate", gate, 2);
  check_activation(op, "gate", gate);
  check_activation(op, "up", up);
  check_activation(op, "out", out);
  check_same_shape(op, "up", up, "gate", gate);
  check_same_shape(op, "out", out, "gate", gate);
  check_rows_contiguous(op, "gate", gate);
  check_rows_contiguous(op, "up", up);
  check_rows_contiguous(op, "out", out);
  Device device = gate.device();
  check_device(op, "up", up, device);
  check_device(op, "out", out, device);
  check_alias_ok(op, "out", out, "gate", gate);
  check_alias_ok(op, "out", out, "up", up);
  backend_for(device).silu_mul(gate, up, out);
}

void add(const Tensor& a, const Tensor& b, Tensor& out) {
  const char* op = "add";
  check_defined(op, "a", a);
  check_defined(op, "b", b);
  check_defined(op, "out", out);
  check_activation(op, "a", a);
  check_activation(op, "b", b);
  check_activation(op, "out", out);
  check_same_shape(op, "b", b, "a", a);
  check_same_shape(op, "out", out, "a", a);
  check_contiguous(op, "a", a);
  check_contiguous(op, "b", b);
  check_contiguous(op, "out", out);
  Device device = a.device();
  check_device(op, "b", b, device);
  check_device(op, "out", out, device);
  check_alias_ok(op, "out", out, "a", a);
  check_alias_ok(op, "out", out, "b", b);
  backend_for(device).add(a, b, out);
}

}  // namespace hearth::ops
