// copy front-end: checks shapes and dtypes, then dispatches to the backend of the device that is
// not the host (a transfer is the accelerator backend's job), or to the CPU backend.
#include "ops/copy.h"

#include "ops/backend.h"
#include "ops/validate.h"

namespace hearth::ops {

using namespace detail;

void copy(const Tensor& src, Tensor& dst) {
  check_defined("copy", "src", src);
  check_defined("copy", "dst", dst);
  check_same_shape("copy", "dst", dst, "src", src);
  bool src_float = is_floating(src.dtype());
  bool dst_float = is_floating(dst.dtype());
  if (src_float != dst_float || (!src_float && src.dtype() != dst.dtype()))
    fail(ErrorCode::invalid_argument,
         "copy: cannot convert {} to {} (float dtypes convert among themselves, integer dtypes "
         "must match)",
         src.describe(), dst.describe());
  if (src.device() == dst.device()) check_alias_ok("copy", "dst", dst, "src", src);
  Device device = src.device().is_cpu() ? dst.device() : src.device();
  backend_for(device).copy(src, dst);
}

Tensor contiguous(const Tensor& src) {
  check_defined("contiguous", "src", src);
  if (src.is_contiguous()) return src;
  Tensor out = Tensor::empty(src.shape(), src.dtype(), src.device());
  copy(src, out);
  return out;
}

Tensor cast(const Tensor& src, DType dtype) {
  check_defined("cast", "src", src);
  if (src.dtype() == dtype) return src;
  Tensor out = Tensor::empty(src.shape(), dtype, src.device());
  copy(src, out);
  return out;
}

Tensor to_device(const Tensor& src, Device device) {
  check_defined("to_device", "src", src);
  if (src.device() == device) return src;
  backend_for(device);  // starts the device's backend (and its allocator) or says why it cannot
  Tensor out = Tensor::empty(src.shape(), src.dtype(), device);
  copy(src, out);
  return out;
}

}  // namespace hearth::ops
