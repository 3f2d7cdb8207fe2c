// A linear layer (or embedding table) in HF layout [out, in], dense or MLX affine-quantized, and
// the loading rule that tells the two apart: a quantized layer has `<prefix>.scales` and
// `<prefix>.biases` beside a u32 `<prefix>.weight`, and its bits and group size follow from the
// shapes (so per-layer overrides in config.json's `quantization` need no special handling).
#pragma once

#include <span>
#include <string>

#include "io/weights.h"
#include "ops/quantized.h"

namespace hearth::model {

struct Linear {
  Tensor weight;                   // dense [out, in]; undefined when quantized
  ops::QuantizedWeight quantized;  // when quantized.packed is defined
  Tensor bias;                     // [out] or undefined

  bool is_quantized() const { return quantized.packed.defined(); }
  int64_t out_features() const { return is_quantized() ? quantized.rows() : weight.dim(0); }
  int64_t in_features() const { return is_quantized() ? quantized.cols() : weight.dim(1); }
  size_t weight_bytes() const;  // bytes one full product reads (weights, scales, biases, bias)
  // out [M, out] = x [M, in] . W^T (+ bias)
  void apply(const Tensor& x, Tensor& out) const;
  // Embedding use: out [T, in] = rows ids of W.
  void gather(const Tensor& ids, Tensor& out) const;
  // Uploads the tensors to `device` (weights are fixed at load, so this happens once).
  void move_to(Device device);
};

// Whether the decoder uses the fused ops (ops::add_rms_norm, rope_qk, matmul_grouped,
// matmul_silu_mul); HEARTH_DISABLE_FUSION=1 (read once) runs the unfused sequences instead, to
// bisect a regression. The fused ops equal those sequences bit for bit on each backend.
bool fusion_enabled();
// Whether one fused product op can take these layers: fusion enabled, every layer dense (the fused
// kernels read f32/f16/bf16 weights, not MLX-quantized ones) and all of one weight dtype. The one
// place that decides between the fused and the unfused calls.
bool fusable(std::span<const Linear* const> layers);

// outs[i] = x . layers[i]^T (+ bias) for layers that share x (q, k, v): one ops::matmul_grouped
// when fusable, else one apply each. Up to ops::kMaxMatmulGroups layers.
void apply_grouped(std::span<const Linear* const> layers, const Tensor& x,
                   std::span<Tensor* const> outs);
// out = silu(gate(x)) * up(x): one ops::matmul_silu_mul when fusable, else gate.apply into out,
// up.apply into up_buffer and ops::silu_mul (up_buffer: [M, up.out_features] f32).
void apply_silu_mul(const Linear& gate, const Linear& up, const Tensor& x, Tensor& out,
                    Tensor& up_buffer);

// Takes `<prefix>.weight` (+ `.scales`/`.biases` when quantized, + `.bias` when `bias`) out of
// `weights`, checking every shape against [out_features, in_features]. Errors name the folder and
// the tensor.
Linear take_linear(io::WeightSet& weights, const std::string& prefix, int64_t out_features,
                   int64_t in_features, bool bias);

}  // namespace hearth::model
