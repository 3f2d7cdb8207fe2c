// Argument checks shared by the op front-ends (ops/<op>.cpp). Each failure raises an
// invalid_argument hearth::Error whose message starts with the op's name and names the tensor at
// fault, e.g. "rms_norm: weight has 63 elements, x rows have 64".
#pragma once

#include <initializer_list>

#include "core/tensor.h"

namespace hearth::ops::detail {

void check_defined(const char* op, const char* name, const Tensor& t);
void check_dtype(const char* op, const char* name, const Tensor& t, DType expected);
void check_dtype_in(const char* op, const char* name, const Tensor& t,
                    std::initializer_list<DType> allowed);
// An activation tensor (the inputs and outputs of the decoder's ops): f32, or bf16 (computed in
// f32 and rounded once when written).
void check_activation(const char* op, const char* name, const Tensor& t);
void check_ndim(const char* op, const char* name, const Tensor& t, int ndim);
void check_shape(const char* op, const char* name, const Tensor& t, const Dims& expected);
// t and ref have the same shape (messages name both).
void check_same_shape(const char* op, const char* name, const Tensor& t, const char* ref_name,
                      const Tensor& ref);
void check_contiguous(const char* op, const char* name, const Tensor& t);
// The last dimension has stride 1 (other dimensions may be strided).
void check_rows_contiguous(const char* op, const char* name, const Tensor& t);
void check_device(const char* op, const char* name, const Tensor& t, Device device);
// dst may be the very same memory as src (same start, same strides) but must not partly overlap.
void check_alias_ok(const char* op, const char* dst_name, const Tensor& dst, const char* src_name,
                    const Tensor& src);
// dst must not share any memory with src.
void check_no_overlap(const char* op, const char* dst_name, const Tensor& dst, const char* src_name,
                      const Tensor& src);
// A product's optional bias: a float vector of the weight's n rows on `device`, apart from out.
void check_bias(const char* op, const char* bias_name, const Tensor& bias, int64_t n,
                const char* w_name, Device device, const char* out_name, const Tensor& out);

}  // namespace hearth::ops::detail
