// Softmax and log-softmax over the last dimension, f32.
#pragma once

#include "core/tensor.h"

namespace hearth::ops {

void softmax(const Tensor& x, Tensor& out);
void log_softmax(const Tensor& x, Tensor& out);

}  // namespace hearth::ops
