// Elementwise ops of the transformer block.
#pragma once

#include "core/tensor.h"

namespace hearth::ops {

// out = silu(gate) * up; gate, up, out: f32 [T, I] (rows contiguous, any row stride, so gate and
// up may be the two halves of one fused projection). out may alias gate or up.
void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out);
// out = a + b; same shapes, f32, contiguous; out may alias a or b.
void add(const Tensor& a, const Tensor& b, Tensor& out);

}  // namespace hearth::ops
