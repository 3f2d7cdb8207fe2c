// The CUDA backend's sampling ops (sampling_backend.cpp): tensors unpacked for the launchers of
// sampling.cu, kept out of cuda_backend.cpp.
#pragma once

#include <span>

#include "core/tensor.h"
#include "ops/sampling.h"

namespace hearth::ops::cuda {

void sample(const Tensor& logprobs, const SamplingParams& params, std::span<const double> uniforms,
            Tensor& out);
void apply_logit_penalties(Tensor& logits, const Tensor& history, const Tensor& bias_ids,
                           const Tensor& bias_values, const LogitPenalties& penalties);

}  // namespace hearth::ops::cuda
