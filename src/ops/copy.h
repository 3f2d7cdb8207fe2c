// Copies between tensors of any strides, converting between float dtypes.
#pragma once

#include "core/tensor.h"

namespace hearth::ops {

// dst = src elementwise. Shapes must match; float dtypes convert (round-to-nearest-even), integer
// dtypes must be equal. Devices may differ when a backend provides the transfer.
void copy(const Tensor& src, Tensor& dst);
// Allocating conveniences built on copy.
Tensor contiguous(const Tensor& src);
Tensor cast(const Tensor& src, DType dtype);
Tensor to_device(const Tensor& src, Device device);

}  // namespace hearth::ops
