// sample and apply_logit_penalties front-ends.
#include "ops/sampling.h"

#include <cmath>
#include <cstdint>

#include "ops/backend.h"
#include "ops/validate.h"

namespace hearth::ops {

using namespace detail;

void sample(const Tensor& logprobs, const SamplingParams& params, std::span<const double> uniforms,
            Tensor& out) {
  const char* op = "sample";
  check_defined(op, "logprobs", logprobs);
  check_defined(op, "out", out);
  check_ndim(op, "logprobs", logprobs, 2);
  check_dtype(op, "logprobs", logprobs, DType::f32);
  check_dtype(op, "out", out, DType::i32);
  check_shape(op, "out", out, {logprobs.dim(0)});
  check_rows_contiguous(op, "logprobs", logprobs);
  check_device(op, "out", out, logprobs.device());
  const int64_t rows = logprobs.dim(0), vocab = logprobs.dim(1);
  if (vocab == 0 && rows > 0)
    fail(ErrorCode::invalid_argument, "sample: logprobs {} has no columns", logprobs.shape().str());
  if (vocab > int64_t(INT32_MAX))
    fail(ErrorCode::invalid_argument, "sample: logprobs {} has more columns than int32 ids reach",
         logprobs.shape().str());
  // The ranges gen::make_sampler enforces (with the flags' names); NaN fails every check.
  if (!(params.temp >= 0))
    fail(ErrorCode::invalid_argument, "sample: temp must be >= 0, got {}", params.temp);
  if (!(params.top_p >= 0 && params.top_p <= 1))
    fail(ErrorCode::invalid_argument, "sample: top_p must be in [0, 1], got {}", params.top_p);
  if (!(params.min_p >= 0 && params.min_p <= 1))
    fail(ErrorCode::invalid_argument, "sample: min_p must be in [0, 1], got {}", params.min_p);
  if (params.min_tokens_to_keep < 1)
    fail(ErrorCode::invalid_argument, "sample: min_tokens_to_keep must be >= 1, got {}",
         params.min_tokens_to_keep);
  if (params.top_k < 0 || (params.top_k > 0 && params.top_k >= vocab))
    fail(ErrorCode::invalid_argument, "sample: top_k must be in (0, {}) or 0, got {}", vocab,
         params.top_k);
  if (params.temp > 0) {
    if (int64_t(uniforms.size()) != rows)
      fail(ErrorCode::invalid_argument, "sample: {} uniforms for {} rows of logprobs",
           uniforms.size(), rows);
    for (size_t r = 0; r < uniforms.size(); ++r)
      if (!(uniforms[r] >= 0.0 && uniforms[r] < 1.0))
        fail(ErrorCode::invalid_argument, "sample: uniforms[{}] = {} is outside [0, 1)", r,
             uniforms[r]);
  }
  if (rows == 0) return;
  backend_for(logprobs.device()).sample(logprobs, params, uniforms, out);
}

void apply_logit_penalties(Tensor& logits, const Tensor& history, const Tensor& bias_ids,
                           const Tensor& bias_values, const LogitPenalties& penalties) {
  const char* op = "apply_logit_penalties";
  check_defined(op, "logits", logits);
  check_defined(op, "history", history);
  check_defined(op, "bias_ids", bias_ids);
  check_defined(op, "bias_values", bias_values);
  check_ndim(op, "logits", logits, 2);
  check_dtype(op, "logits", logits, DType::f32);
  check_rows_contiguous(op, "logits", logits);
  check_ndim(op, "history", history, 2);
  check_dtype(op, "history", history, DType::i32);
  if (history.dim(0) != logits.dim(0))
    fail(ErrorCode::invalid_argument,
         "apply_logit_penalties: history {} has not the {} rows of logits", history.shape().str(),
         logits.dim(0));
  check_contiguous(op, "history", history);
  check_ndim(op, "bias_ids", bias_ids, 1);
  check_dtype(op, "bias_ids", bias_ids, DType::i32);
  check_contiguous(op, "bias_ids", bias_ids);
  check_dtype(op, "bias_values", bias_values, DType::f32);
  check_shape(op, "bias_values", bias_values, {bias_ids.dim(0)});
  check_contiguous(op, "bias_values", bias_values);
  check_device(op, "history", history, logits.device());
  check_device(op, "bias_ids", bias_ids, logits.device());
  check_device(op, "bias_values", bias_values, logits.device());
  const struct {
    const char* name;
    float penalty;
    int context;
  } terms[] = {{"repetition", penalties.repetition, penalties.repetition_context},
               {"presence", penalties.presence, penalties.presence_context},
               {"frequency", penalties.frequency, penalties.frequency_context}};
  for (const auto& t : terms) {
    if (t.penalty == 0) continue;
    if (!std::isfinite(t.penalty))
      fail(ErrorCode::invalid_argument, "apply_logit_penalties: the {} penalty is {}", t.name,
           t.penalty);
    if (t.context < 0 || t.context > history.dim(1))
      fail(ErrorCode::invalid_argument,
           "apply_logit_penalties: the {} context {} is outside [0, {}] (the history's width)",
           t.name, t.context, history.dim(1));
  }
  if (penalties.repetition < 0)
    fail(ErrorCode::invalid_argument, "apply_logit_penalties: repetition penalty {} is negative",
         penalties.repetition);
  if (logits.dim(0) == 0 || logits.dim(1) == 0) return;
  backend_for(logits.device())
      .apply_logit_penalties(logits, history, bias_ids, bias_values, penalties);
}

}  // namespace hearth::ops
