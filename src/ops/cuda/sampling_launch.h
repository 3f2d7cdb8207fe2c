// Launchers of the sampling kernels (sampling.cu): plain C++ declarations, as in launch.h (no
// hearth headers, so nvcc and host code both include it). The arguments were validated by the op
// front-ends (ops/sampling.cpp).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace hearth::ops::cuda {

// ops::SamplingParams.
struct SampleConfig {
  float temp = 0.0f;
  float top_p = 0.0f;
  float min_p = 0.0f;
  int min_tokens_to_keep = 1;
  int top_k = 0;
};

// logprobs: rows of `vocab` floats, `row_stride` apart; uniforms: host, one per row (unused when
// temp == 0); out: i32 at out[r * out_stride].
cudaError_t launch_sample(const float* logprobs, int64_t row_stride, int64_t rows, int64_t vocab,
                          const SampleConfig& config, const double* uniforms, int32_t* out,
                          int64_t out_stride, cudaStream_t stream);

// ops::LogitPenalties (a penalty of 0 is off).
struct PenaltyConfig {
  float repetition = 0.0f;
  int repetition_context = 0;
  float presence = 0.0f;
  int presence_context = 0;
  float frequency = 0.0f;
  int frequency_context = 0;
};

// logits: rows of `vocab` floats, `row_stride` apart, changed in place; history: [rows, width]
// contiguous i32 (left padding < 0); bias_ids / bias_values: n_bias entries.
cudaError_t launch_logit_penalties(float* logits, int64_t row_stride, int64_t rows, int64_t vocab,
                                   const int32_t* history, int64_t width, const int32_t* bias_ids,
                                   const float* bias_values, int64_t n_bias,
                                   const PenaltyConfig& config, cudaStream_t stream);

}  // namespace hearth::ops::cuda
