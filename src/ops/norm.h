// RMSNorm over the last dimension, as HF LlamaRMSNorm: w * (x * rsqrt(mean(x^2) + eps)), and its
// fusion with the residual add that precedes it in every decoder layer.
#pragma once

#include "core/tensor.h"

namespace hearth::ops {

// x: f32 [..., H] (rows contiguous); weight: [H] f32/f16/bf16; out: like x (may alias x).
void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out);

// The residual stream update and the next norm in one pass over x: x += delta (in place), then
// normed = rms_norm(x, weight, eps). Bit-identical to add(x, delta, x) followed by
// rms_norm(x, weight, eps, normed) on the same backend (same f32 operations in the same order).
// x, delta, normed: f32, same shape [..., H], rows contiguous; normed may alias delta (the
// decoder normalizes into the buffer that held the sublayer output) but not x.
void add_rms_norm(Tensor& x, const Tensor& delta, const Tensor& weight, float eps, Tensor& normed);

}  // namespace hearth::ops
