// Selections over the last dimension of logits.
#pragma once

#include "core/tensor.h"

namespace hearth::ops {

// x: f32 [R, V]; out: i32 [R]. Ties resolve to the lowest index (as torch.argmax and numpy do).
void argmax(const Tensor& x, Tensor& out);
// values: f32 [R, k], indices: i32 [R, k], sorted by value descending, ties by lower index.
void top_k(const Tensor& x, int k, Tensor& values, Tensor& indices);

}  // namespace hearth::ops
