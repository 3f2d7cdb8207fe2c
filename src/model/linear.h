// A linear layer (or embedding table) in HF layout [out, in], dense or MLX affine-quantized, and
// the loading rule that tells the two apart: a quantized layer has `<prefix>.scales` and
// `<prefix>.biases` beside a u32 `<prefix>.weight`, and its bits and group size follow from the
// shapes (so per-layer overrides in config.json's `quantization` need no special handling).
#pragma once

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

// Takes `<prefix>.weight` (+ `.scales`/`.biases` when quantized, + `.bias` when `bias`) out of
// `weights`, checking every shape against [out_features, in_features]. Errors name the folder and
// the tensor.
Linear take_linear(io::WeightSet& weights, const std::string& prefix, int64_t out_features,
                   int64_t in_features, bool bias);

}  // namespace hearth::model
