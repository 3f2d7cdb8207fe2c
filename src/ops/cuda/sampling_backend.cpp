// The CUDA backend's sampling ops: arguments for the launchers of sampling.cu.
#include "ops/cuda/sampling_backend.h"

#include "ops/cuda/backend_internal.h"
#include "ops/cuda/op_profile.h"
#include "ops/cuda/sampling_launch.h"

namespace hearth::ops::cuda {

void sample(const Tensor& logprobs, const SamplingParams& p, std::span<const double> uniforms,
            Tensor& out) {
  OpProfileScope scope("sample", backend_stream());
  const SampleConfig config{p.temp, p.top_p, p.min_p, p.min_tokens_to_keep, p.top_k};
  check_cuda(
      launch_sample(logprobs.data<float>(), logprobs.stride(0), logprobs.dim(0), logprobs.dim(1),
                    config, uniforms.data(), out.data<int32_t>(), out.stride(0), backend_stream()),
      "sample");
}

void apply_logit_penalties(Tensor& logits, const Tensor& history, const Tensor& bias_ids,
                           const Tensor& bias_values, const LogitPenalties& p) {
  OpProfileScope scope("apply_logit_penalties", backend_stream());
  const PenaltyConfig config{p.repetition,       p.repetition_context, p.presence,
                             p.presence_context, p.frequency,          p.frequency_context};
  const int64_t n_bias = bias_ids.numel();
  check_cuda(launch_logit_penalties(logits.data<float>(), logits.stride(0), logits.dim(0),
                                    logits.dim(1), history.data<int32_t>(), history.dim(1),
                                    n_bias ? bias_ids.data<int32_t>() : nullptr,
                                    n_bias ? bias_values.data<float>() : nullptr, n_bias, config,
                                    backend_stream()),
             "apply_logit_penalties");
}

}  // namespace hearth::ops::cuda
