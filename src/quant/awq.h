// AutoAWQ / GPTQ 4-bit checkpoints (config.json `quantization_config.quant_method` "awq" or
// "gptq") converted to MLX's affine layout at load, as mlx-lm's `_transform_awq_weights` does.
//
// Input per quantized module <p> (AutoAWQ GEMM layout):
//   <p>.qweight  i32 [in, out/8]       8 codes per word in AWQ's interleaved nibble order: the
//                                      code of output column 8c+j sits at bits 4*kAwqOrder[j]
//   <p>.qzeros   i32 [in/gs, out/8]    zero points, packed the same way (optional: symmetric
//                                      checkpoints have none and the zero point is 8)
//   <p>.scales   f16/bf16/f32 [in/gs, out]
// Output (what MLX's QuantizedLinear holds):
//   <p>.weight   u32 [out, in/8]       code of input column i at bits 4*(i%8) of word i/8
//   <p>.scales   [out, in/gs]          the transposed scales
//   <p>.biases   [out, in/gs]          -zero * scale, computed in f32, rounded to the scales' dtype
// since AWQ dequantizes (q - zero) * scale and MLX q * scale + bias.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/tensor.h"
#include "io/weights.h"
#include "ops/quantized.h"
#include "quant/quant_config.h"

namespace hearth::quant {

// Bit position (in nibbles) of the j-th code of a packed AWQ word.
inline constexpr int kAwqOrder[8] = {0, 4, 1, 5, 2, 6, 3, 7};

// One module's tensors, as mlx-lm transforms them. `qzeros` may be undefined (symmetric). `name`
// (the module path) and shapes that do not fit together are named in errors.
ops::QuantizedWeight awq_to_mlx(const Tensor& qweight, const Tensor& qzeros, const Tensor& scales,
                                int group_size, const std::string& name);

// GPTQ's own layout (AutoGPTQ, GPTQModel), which mlx-lm's transform does not handle (it reads
// every checkpoint as AutoAWQ packs it): qweight i32 [in/8, out], input row 8r+j at bits 4j of
// word [r, o]; qzeros i32 [in/gs, out/8], output column 8c+j at bits 4j of word [g, c], holding
// zero - `zero_offset` (1 in AutoGPTQ's checkpoint_format "gptq", 0 in "gptq_v2"); scales
// [in/gs, out]. GPTQ dequantizes (q - zero) * scale; the MLX form is the same as above.
ops::QuantizedWeight gptq_to_mlx(const Tensor& qweight, const Tensor& qzeros, const Tensor& scales,
                                 int group_size, int zero_offset, const std::string& name);

// Rewrites a whole checkpoint in place, as mlx-lm does: every <p>.qweight/.qzeros/.scales triple
// becomes <p>.weight/.scales/.biases; other .qzeros/.scales tensors are dropped; every other float
// tensor is cast to the dtype of the scales. `quantization_config` is config.json's entry (`bits`,
// default 4, must be 4; `group_size`, default 128); `origin` names it in errors. A `.g_idx` tensor
// (GPTQ act-order) is an error unless it is the trivial i / group_size, which is dropped. Returns
// the MLX quantization dict mlx-lm records for such a model: {"group_size": gs, "bits": 4}.
// quant_method "gptq" tensors in GPTQ's own layout (told apart by shape) go through gptq_to_mlx,
// with the zero offset of `checkpoint_format`.
QuantizationConfig convert_awq_gptq(io::WeightSet& weights,
                                    const nlohmann::ordered_json& quantization_config,
                                    const std::string& origin);

}  // namespace hearth::quant
