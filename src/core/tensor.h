// A typed, strided view of a Storage. Views (slice, reshape, transpose, ...) share the storage and
// never copy; copies and dtype conversions are ops (ops/copy.h) because they run on the device.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/storage.h"

namespace hearth {

// Small fixed-capacity list of dimensions (or strides), cheap to copy.
class Dims {
 public:
  static constexpr int kMaxDims = 8;

  Dims() = default;
  Dims(std::initializer_list<int64_t> values);
  explicit Dims(const std::vector<int64_t>& values);

  int size() const { return n_; }
  bool empty() const { return n_ == 0; }
  int64_t operator[](int i) const { return v_[i]; }
  int64_t& operator[](int i) { return v_[i]; }
  const int64_t* begin() const { return v_.data(); }
  const int64_t* end() const { return v_.data() + n_; }
  int64_t back() const { return v_[n_ - 1]; }
  void push_back(int64_t value);
  int64_t numel() const;  // product; 1 for no dimensions
  std::vector<int64_t> to_vector() const { return {begin(), end()}; }
  std::string str() const;  // "[2, 3]"
  bool operator==(const Dims& other) const;

 private:
  std::array<int64_t, kMaxDims> v_{};
  int n_ = 0;
};

class Tensor {
 public:
  Tensor() = default;  // undefined tensor

  static Tensor empty(const Dims& shape, DType dtype, Device device = Device::cpu());
  // Host-only helpers (tests, small tables).
  static Tensor zeros(const Dims& shape, DType dtype);
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Dims& shape);
  // A view of existing storage.
  static Tensor view_of(std::shared_ptr<Storage> storage, size_t byte_offset, const Dims& shape,
                        DType dtype);

  bool defined() const { return storage_ != nullptr; }
  const Dims& shape() const { return shape_; }
  const Dims& strides() const { return strides_; }  // in elements
  int ndim() const { return shape_.size(); }
  int64_t dim(int i) const { return shape_[i < 0 ? i + ndim() : i]; }
  int64_t stride(int i) const { return strides_[i < 0 ? i + ndim() : i]; }
  int64_t numel() const { return shape_.numel(); }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::cpu(); }
  size_t element_size() const { return dtype_size(dtype_); }
  size_t nbytes() const { return size_t(numel()) * element_size(); }
  size_t byte_offset() const { return offset_; }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  void* raw_data() const { return static_cast<char*>(storage_->data()) + offset_; }
  // Typed pointer; checks that T matches the dtype.
  template <typename T>
  T* data() const;

  bool is_contiguous() const;
  // Last dimension has stride 1 (rows may be strided): what most kernels need.
  bool has_contiguous_rows() const { return ndim() == 0 || stride(-1) == 1 || dim(-1) == 1; }

  // Views. Negative dimensions count from the end. reshape requires a contiguous tensor; one
  // dimension may be -1.
  Tensor reshape(const Dims& shape) const;
  Tensor slice(int dim, int64_t start, int64_t end) const;
  Tensor select(int dim, int64_t index) const;  // drops the dimension
  Tensor transpose(int a, int b) const;
  Tensor unsqueeze(int dim) const;
  // Reinterprets the bytes as another dtype of the same size (contiguous rows required).
  Tensor bitcast(DType dtype) const;

  // Host tensors only: copies the elements (any strides) into a vector.
  template <typename T>
  std::vector<T> to_vector() const;

  std::string describe() const;  // "bf16[2, 3] cpu"

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;
  Dims shape_;
  Dims strides_;
  DType dtype_ = DType::f32;
};

Dims contiguous_strides(const Dims& shape);

template <typename T>
T* Tensor::data() const {
  HEARTH_CHECK(defined(), "data() of an undefined tensor");
  HEARTH_CHECK(dtype_of<T>::value == dtype_, "data<{}>() of a {} tensor",
               dtype_name(dtype_of<T>::value), dtype_name(dtype_));
  return static_cast<T*>(raw_data());
}

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Dims& shape) {
  HEARTH_CHECK(int64_t(values.size()) == shape.numel(), "{} values for shape {}", values.size(),
               shape.str());
  Tensor t = empty(shape, dtype_of<T>::value);
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return t;
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  HEARTH_CHECK(device().is_cpu(), "to_vector() needs a host tensor");
  HEARTH_CHECK(dtype_of<T>::value == dtype_, "to_vector<{}>() of a {} tensor",
               dtype_name(dtype_of<T>::value), dtype_name(dtype_));
  std::vector<T> out;
  out.reserve(size_t(numel()));
  const T* base = static_cast<const T*>(raw_data());
  std::array<int64_t, Dims::kMaxDims> index{};
  for (int64_t n = 0; n < numel(); ++n) {
    int64_t offset = 0;
    for (int d = 0; d < ndim(); ++d) offset += index[d] * strides_[d];
    out.push_back(base[offset]);
    for (int d = ndim() - 1; d >= 0; --d) {
      if (++index[d] < shape_[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

}  // namespace hearth
