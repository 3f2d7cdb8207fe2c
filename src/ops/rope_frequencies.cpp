// rope_frequencies: the inverse-frequency tables of HF transformers 5 (modeling_rope_utils.py and
// the models' compute_default_rope_parameters), reproduced operation by operation in float32.
//
// HF builds these tables with float32 torch tensors mixed with Python floats (doubles). Each
// tensor op rounds to float32 once, and a Python scalar meeting a float32 tensor is first rounded
// to float32. `scalar / tensor` is `tensor.reciprocal() * scalar` in torch (Tensor.__rtruediv__),
// so it rounds twice. We follow that order exactly; the only differences left are in pow (torch
// uses a 1-ulp vectorized powf, we round the double result), i.e. at most an ulp or so.
//
// This file is compiled with -ffp-contract=off (src/CMakeLists.txt): fusing a*b+c into an FMA
// would round differently from torch's separate kernels.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "ops/rope.h"

namespace hearth::ops {
namespace {

float f32(double v) {
  return static_cast<float>(v);
}
// torch.pow(float32, float32) as a correctly rounded float.
float pow_f32(float base, float exponent) {
  return f32(std::pow(double(base), double(exponent)));
}
// `scalar / t` on a float32 tensor: t.reciprocal() * scalar.
float rdiv(double scalar, float t) {
  return (1.0f / t) * f32(scalar);
}

// torch.arange(0, dim, 2).float() / dim, one element.
float exponent_at(int64_t i, int64_t dim) {
  return float(2 * i) / float(dim);
}

// 1.0 / (base ** (arange(0, dim, 2) / dim)) with base already a float32 value.
std::vector<float> default_inv_freq(float base, int64_t dim) {
  std::vector<float> inv(static_cast<size_t>(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) inv[size_t(i)] = 1.0f / pow_f32(base, exponent_at(i, dim));
  return inv;
}

std::vector<float> llama3_inv_freq(const RopeParams& p, int64_t dim) {
  std::vector<float> inv = default_inv_freq(f32(p.theta), dim);
  double old_context_len = double(p.original_max_position_embeddings);
  float low_freq_wavelen = f32(old_context_len / p.low_freq_factor);
  float high_freq_wavelen = f32(old_context_len / p.high_freq_factor);
  float factor = f32(p.factor);
  float low = f32(p.low_freq_factor);
  float span = f32(p.high_freq_factor - p.low_freq_factor);
  for (float& f : inv) {
    float wavelen = rdiv(2.0 * std::numbers::pi, f);
    float llama = wavelen > low_freq_wavelen ? f / factor : f;
    float smooth = (rdiv(old_context_len, wavelen) - low) / span;
    float smoothed = (1.0f - smooth) * llama / factor + smooth * llama;
    bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
    f = medium ? smoothed : llama;
  }
  return inv;
}

double yarn_mscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

RopeFrequencies yarn_frequencies(const RopeParams& p, int64_t dim) {
  double base = p.theta;
  double factor = p.factor;
  int64_t original = p.original_max_position_embeddings > 0 ? p.original_max_position_embeddings
                                                            : p.max_position_embeddings;
  if (original <= 0)
    fail(ErrorCode::invalid_argument,
         "rope_frequencies: yarn needs original_max_position_embeddings (or "
         "max_position_embeddings)");
  RopeFrequencies out;
  double attention;
  if (p.attention_factor) {
    attention = *p.attention_factor;
  } else if (p.mscale && p.mscale_all_dim && *p.mscale != 0.0 && *p.mscale_all_dim != 0.0) {
    attention = yarn_mscale(factor, *p.mscale) / yarn_mscale(factor, *p.mscale_all_dim);
  } else {
    attention = yarn_mscale(factor, 1.0);
  }
  out.attention_scaling = f32(attention);
  // HF: `rope_parameters.get("beta_fast") or 32`, so 0 means the default too.
  double beta_fast = p.beta_fast != 0.0 ? p.beta_fast : 32.0;
  double beta_slow = p.beta_slow != 0.0 ? p.beta_slow : 1.0;
  auto correction_dim = [&](double rotations) {
    return (double(dim) * std::log(double(original) / (rotations * 2.0 * std::numbers::pi))) /
           (2.0 * std::log(base));
  };
  double low = correction_dim(beta_fast);
  double high = correction_dim(beta_slow);
  if (p.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, double(dim - 1));
  if (low == high) high += 0.001;  // HF: "Prevent singularity"
  float ramp_min = f32(low);
  float ramp_span = f32(high - low);
  float factor_f = f32(factor);
  float base_f = f32(base);
  out.inv_freq.resize(size_t(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) {
    float pos_freq = pow_f32(base_f, exponent_at(i, dim));
    float extrapolation = 1.0f / pos_freq;
    float interpolation = 1.0f / (factor_f * pos_freq);
    float ramp = (float(i) - ramp_min) / ramp_span;
    ramp = std::min(std::max(ramp, 0.0f), 1.0f);
    float extrapolation_factor = 1.0f - ramp;
    out.inv_freq[size_t(i)] =
        interpolation * (1.0f - extrapolation_factor) + extrapolation * extrapolation_factor;
  }
  return out;
}

std::vector<float> dynamic_inv_freq(const RopeParams& p, int64_t dim, int64_t seq_len) {
  // HF uses config.max_position_embeddings here (not the original length).
  int64_t max_pos = p.max_position_embeddings > 0 ? p.max_position_embeddings
                                                  : p.original_max_position_embeddings;
  if (max_pos <= 0)
    fail(ErrorCode::invalid_argument, "rope_frequencies: dynamic needs max_position_embeddings");
  if (dim <= 2)
    fail(ErrorCode::invalid_argument, "rope_frequencies: dynamic needs rotary_dim > 2, got {}",
         dim);
  double exponent = double(dim) / double(dim - 2);
  if (seq_len <= max_pos) {
    // The table HF builds at init (seq_len = max_position_embeddings, Python doubles) and resets
    // to whenever the sequence is back within the original length.
    double scale = (p.factor * double(max_pos) / double(max_pos)) - (p.factor - 1.0);
    return default_inv_freq(f32(p.theta * std::pow(scale, exponent)), dim);
  }
  // Past max_position_embeddings HF recomputes with seq_len = max(position_ids) + 1, an int64
  // tensor, so the scale is float32 arithmetic; ** with a Python exponent on a one-element float32
  // tensor runs std::pow(float, double).
  float scaled = f32(p.factor) * float(seq_len);
  scaled = scaled / float(max_pos);
  scaled = scaled - f32(p.factor - 1.0);
  float grown = f32(std::pow(double(scaled), exponent));
  float base = f32(p.theta) * grown;
  return default_inv_freq(base, dim);
}

}  // namespace

RopeFrequencies rope_frequencies(const RopeParams& params, int64_t seq_len) {
  int64_t dim = params.rotary_dim;
  if (dim <= 0 || dim % 2 != 0)
    fail(ErrorCode::invalid_argument, "rope_frequencies: rotary_dim must be even and > 0, got {}",
         dim);
  if (!(params.theta > 0.0) || !std::isfinite(params.theta))
    fail(ErrorCode::invalid_argument, "rope_frequencies: theta must be > 0, got {}", params.theta);
  if (params.type != RopeType::standard && !(params.factor > 0.0))
    fail(ErrorCode::invalid_argument, "rope_frequencies: factor must be > 0, got {}",
         params.factor);
  RopeFrequencies out;
  switch (params.type) {
    case RopeType::standard:
      out.inv_freq = default_inv_freq(f32(params.theta), dim);
      break;
    case RopeType::linear: {
      out.inv_freq = default_inv_freq(f32(params.theta), dim);
      float factor = f32(params.factor);
      for (float& f : out.inv_freq) f = f / factor;
      break;
    }
    case RopeType::dynamic:
      out.inv_freq = dynamic_inv_freq(params, dim, seq_len);
      break;
    case RopeType::llama3:
      if (params.original_max_position_embeddings <= 0)
        fail(ErrorCode::invalid_argument,
             "rope_frequencies: llama3 needs original_max_position_embeddings");
      if (params.high_freq_factor == params.low_freq_factor)
        fail(ErrorCode::invalid_argument,
             "rope_frequencies: llama3 needs high_freq_factor != low_freq_factor");
      out.inv_freq = llama3_inv_freq(params, dim);
      break;
    case RopeType::yarn:
      out = yarn_frequencies(params, dim);
      break;
  }
  return out;
}

}  // namespace hearth::ops
