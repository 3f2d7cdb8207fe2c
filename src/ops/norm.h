// RMSNorm over the last dimension, as HF LlamaRMSNorm: w * (x * rsqrt(mean(x^2) + eps)).
#pragma once

#include "core/tensor.h"

namespace hearth::ops {

// x: f32 [..., H] (rows contiguous); weight: [H] f32/f16/bf16; out: like x (may alias x).
void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out);

}  // namespace hearth::ops
