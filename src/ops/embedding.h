// Token embedding gather.
#pragma once

#include "core/tensor.h"

namespace hearth::ops {

// table: [V, H] f32/f16/bf16; ids: i32 [T]; out: f32 [T, H]. An id outside [0, V) is an
// invalid_argument error naming the id.
void embedding(const Tensor& table, const Tensor& ids, Tensor& out);

}  // namespace hearth::ops
