// Addressing helpers for CPU kernels: the rows (last dimension) of a tensor of any rank, and the
// joint collapsing of dimensions of two same-shape tensors for strided copies.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace hearth::ops::cpu {

// The rows of a tensor whose last dimension is contiguous. Outer dimensions are merged where
// their strides allow, so the common cases ([R, H] with any row stride) cost one multiply.
class Rows {
 public:
  explicit Rows(const Tensor& t) {
    length_ = t.ndim() == 0 ? 1 : t.dim(-1);
    count_ = 1;
    for (int d = 0; d + 1 < t.ndim(); ++d) {
      int64_t size = t.dim(d), stride = t.stride(d);
      count_ *= size;
      if (size == 1) continue;
      if (n_ > 0 && stride_[n_ - 1] == stride * size) {
        shape_[n_ - 1] *= size;
        stride_[n_ - 1] = stride;
      } else {
        shape_[n_] = size;
        stride_[n_] = stride;
        ++n_;
      }
    }
  }

  int64_t count() const { return count_; }
  int64_t length() const { return length_; }
  // Element offset of row r from the tensor's first element.
  int64_t offset(int64_t r) const {
    if (n_ <= 1) return n_ == 0 ? 0 : r * stride_[0];
    int64_t off = 0;
    for (int d = n_ - 1; d >= 0; --d) {
      off += (r % shape_[d]) * stride_[d];
      r /= shape_[d];
    }
    return off;
  }

 private:
  int64_t count_ = 1, length_ = 1;
  int n_ = 0;
  int64_t shape_[Dims::kMaxDims] = {};
  int64_t stride_[Dims::kMaxDims] = {};
};

}  // namespace hearth::ops::cpu
