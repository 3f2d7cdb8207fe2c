#include "core/tensor.h"

#include <cstring>

namespace hearth {

Dims::Dims(std::initializer_list<int64_t> values) {
  HEARTH_CHECK(values.size() <= size_t(kMaxDims), "too many dimensions");
  for (int64_t v : values) v_[n_++] = v;
}

Dims::Dims(const std::vector<int64_t>& values) {
  HEARTH_CHECK(values.size() <= size_t(kMaxDims), "too many dimensions");
  for (int64_t v : values) v_[n_++] = v;
}

void Dims::push_back(int64_t value) {
  HEARTH_CHECK(n_ < kMaxDims, "too many dimensions");
  v_[n_++] = value;
}

int64_t Dims::numel() const {
  int64_t n = 1;
  for (int i = 0; i < n_; ++i) n *= v_[i];
  return n;
}

std::string Dims::str() const {
  std::string s = "[";
  for (int i = 0; i < n_; ++i) s += (i ? ", " : "") + std::to_string(v_[i]);
  return s + "]";
}

bool Dims::operator==(const Dims& other) const {
  if (n_ != other.n_) return false;
  for (int i = 0; i < n_; ++i)
    if (v_[i] != other.v_[i]) return false;
  return true;
}

Dims contiguous_strides(const Dims& shape) {
  Dims strides = shape;
  int64_t s = 1;
  for (int i = shape.size() - 1; i >= 0; --i) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

Tensor Tensor::empty(const Dims& shape, DType dtype, Device device) {
  for (int64_t d : shape)
    if (d < 0) fail(ErrorCode::invalid_argument, "negative dimension in shape {}", shape.str());
  size_t bytes = size_t(shape.numel()) * dtype_size(dtype);
  return view_of(Storage::allocate(bytes, device), 0, shape, dtype);
}

Tensor Tensor::zeros(const Dims& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.raw_data(), 0, t.nbytes());
  return t;
}

Tensor Tensor::view_of(std::shared_ptr<Storage> storage, size_t byte_offset, const Dims& shape,
                       DType dtype) {
  HEARTH_CHECK(storage != nullptr);
  HEARTH_CHECK(byte_offset + size_t(shape.numel()) * dtype_size(dtype) <= storage->size_bytes(),
               "view {} {} at offset {} exceeds storage of {} bytes", dtype_name(dtype),
               shape.str(), byte_offset, storage->size_bytes());
  Tensor t;
  t.storage_ = std::move(storage);
  t.offset_ = byte_offset;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  return t;
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int i = ndim() - 1; i >= 0; --i) {
    if (shape_[i] != 1 && strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

Tensor Tensor::reshape(const Dims& shape) const {
  HEARTH_CHECK(is_contiguous(), "reshape of a non-contiguous tensor {}", describe());
  Dims resolved = shape;
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < resolved.size(); ++i) {
    if (resolved[i] == -1) {
      HEARTH_CHECK(infer < 0, "two -1 dimensions in reshape");
      infer = i;
    } else {
      known *= resolved[i];
    }
  }
  if (infer >= 0) resolved[infer] = known == 0 ? 0 : numel() / known;
  HEARTH_CHECK(resolved.numel() == numel(), "cannot reshape {} to {}", shape_.str(),
               resolved.str());
  Tensor t = *this;
  t.shape_ = resolved;
  t.strides_ = contiguous_strides(resolved);
  return t;
}

Tensor Tensor::slice(int dim, int64_t start, int64_t end) const {
  if (dim < 0) dim += ndim();
  HEARTH_CHECK(dim >= 0 && dim < ndim(), "slice dimension {} of {}", dim, describe());
  HEARTH_CHECK(0 <= start && start <= end && end <= shape_[dim], "slice [{}, {}) of dim {} in {}",
               start, end, dim, describe());
  Tensor t = *this;
  t.offset_ += size_t(start * strides_[dim]) * element_size();
  t.shape_[dim] = end - start;
  return t;
}

Tensor Tensor::select(int dim, int64_t index) const {
  if (dim < 0) dim += ndim();
  Tensor t = slice(dim, index, index + 1);
  Dims shape, strides;
  for (int i = 0; i < ndim(); ++i) {
    if (i == dim) continue;
    shape.push_back(t.shape_[i]);
    strides.push_back(t.strides_[i]);
  }
  t.shape_ = shape;
  t.strides_ = strides;
  return t;
}

Tensor Tensor::transpose(int a, int b) const {
  if (a < 0) a += ndim();
  if (b < 0) b += ndim();
  HEARTH_CHECK(a >= 0 && a < ndim() && b >= 0 && b < ndim(), "transpose {} {} of {}", a, b,
               describe());
  Tensor t = *this;
  std::swap(t.shape_[a], t.shape_[b]);
  std::swap(t.strides_[a], t.strides_[b]);
  return t;
}

Tensor Tensor::unsqueeze(int dim) const {
  if (dim < 0) dim += ndim() + 1;
  HEARTH_CHECK(dim >= 0 && dim <= ndim());
  Dims shape, strides;
  for (int i = 0; i <= ndim(); ++i) {
    if (i == dim) {
      shape.push_back(1);
      strides.push_back(i < ndim() ? shape_[i] * strides_[i] : 1);
    }
    if (i < ndim()) {
      shape.push_back(shape_[i]);
      strides.push_back(strides_[i]);
    }
  }
  Tensor t = *this;
  t.shape_ = shape;
  t.strides_ = strides;
  return t;
}

Tensor Tensor::bitcast(DType dtype) const {
  HEARTH_CHECK(dtype_size(dtype) == element_size(), "bitcast {} to {}", dtype_name(dtype_),
               dtype_name(dtype));
  Tensor t = *this;
  t.dtype_ = dtype;
  return t;
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined";
  return std::string(dtype_name(dtype_)) + shape_.str() + " " + device().str();
}

}  // namespace hearth
