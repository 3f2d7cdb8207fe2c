// Token sampling and logits penalties on the logits' device, so that a GPU step sends back only
// token ids (issue 4). The semantics are mlx-lm's (sample_utils.py); the single-row host functions
// in `sampling_rows` below are their one definition: the CPU backend runs them, gen's samplers call
// them, and the CUDA kernels (cuda/sampling.cu) are tested against them.
#pragma once

#include <cstdint>
#include <span>

#include "core/tensor.h"

namespace hearth::ops {

// The filters and temperature of gen::SamplerParams that run on a device (XTC and custom samplers
// stay on the host). The chain is top_p -> min_p -> top_k -> categorical(logprobs / temp).
struct SamplingParams {
  float temp = 0.0f;   // 0: argmax (first maximum; NaN never wins), no uniform used
  float top_p = 0.0f;  // applied when 0 < top_p < 1
  float min_p = 0.0f;  // applied when != 0
  int min_tokens_to_keep = 1;
  int top_k = 0;  // applied when > 0
};

// logprobs: f32 [R, V] log-softmax rows (rows contiguous); out: i32 [R] on the same device.
// uniforms: one draw in [0, 1) per row (host values, in row order: gen::Rng's draws) when
// temp > 0; ignored (may be empty) when temp == 0. Row r's token is
//   categorical(top_k(min_p(top_p(logprobs[r]))) / temp, uniforms[r]),
// with the rules of the sampling_rows functions below.
void sample(const Tensor& logprobs, const SamplingParams& params, std::span<const double> uniforms,
            Tensor& out);

// The logits processors of gen::LogitsProcessorParams, in their order: logit_bias, then the
// repetition penalty (each distinct token of the last repetition_context ids once, sign-aware),
// the presence penalty (distinct tokens), the frequency penalty (every occurrence). A penalty of 0
// is off.
struct LogitPenalties {
  float repetition = 0.0f;
  int repetition_context = 20;
  float presence = 0.0f;
  int presence_context = 20;
  float frequency = 0.0f;
  int frequency_context = 20;
};

// logits: f32 [R, V], changed in place. history: i32 [R, W], each row's most recent ids
// right-aligned, entries < 0 padding on the left (a row with fewer than W ids); W >= the largest
// context of an active penalty. bias_ids: i32 [B] distinct ids in [0, V), bias_values: f32 [B]
// (B may be 0). All on logits' device.
void apply_logit_penalties(Tensor& logits, const Tensor& history, const Tensor& bias_ids,
                           const Tensor& bias_values, const LogitPenalties& penalties);

// One row on the host (ops/cpu/sampling.cpp). Filters mask removed entries with -inf.
namespace sampling_rows {

// Keeps the tokens whose cumulative probability, in ascending stable order (ties by index), is
// > 1 - top_p (HF's TopPLogitsWarper), summed in double.
void top_p(std::span<float> logprobs, float top_p);
// Keeps the tokens with logprob >= max + log(min_p), and at least the min_tokens_to_keep best
// (value descending, ties to the lower index).
void min_p(std::span<float> logprobs, float min_p, int min_tokens_to_keep);
// Keeps the top_k best (value descending, ties to the lower index).
void top_k(std::span<float> logprobs, int top_k);
// Walks the weights exp(logprob / temp - max) (double) in index order with u * total; argmax when
// no weight is finite. u in [0, 1).
int32_t categorical(std::span<const float> logprobs, float temp, double u);
// The first maximum (as mx.argmax / numpy); NaN never wins.
int32_t argmax(std::span<const float> values);
// The whole chain of `sample` for one row (filters in place).
int32_t sample(std::span<float> logprobs, const SamplingParams& params, double u);

// `recent` holds the last `context` ids of the history (ids outside [0, V) are skipped).
void repetition_penalty(std::span<const int32_t> recent, std::span<float> logits, float penalty);
void presence_penalty(std::span<const int32_t> recent, std::span<float> logits, float penalty);
void frequency_penalty(std::span<const int32_t> recent, std::span<float> logits, float penalty);
// The last min(size, context) ids of a history.
std::span<const int32_t> last(std::span<const int32_t> history, int context);

}  // namespace sampling_rows
}  // namespace hearth::ops
