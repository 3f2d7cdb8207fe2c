// The tensors of an MLX-format quantized folder: which modules are quantized (mlx-lm's load rule)
// and their packed weight / scales / biases checked against each other.
//
// A quantized module <p> holds <p>.weight (u32 [..., out, in * bits / 32]), <p>.scales and, in
// affine mode, <p>.biases ([..., out, in / group_size], the model's float dtype), and optionally
// <p>.bias. Leading dimensions are experts (MoE SwitchLinear).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "io/weights.h"
#include "ops/quantized.h"
#include "quant/quant_config.h"

namespace hearth::quant {

struct QuantizedModule {
  std::string path;
  QuantSpec spec;
  int64_t out_features = 0, in_features = 0;
};

// "model.layers.0.mlp.down_proj.weight" -> "model.layers.0.mlp.down_proj" (the module) and
// "weight" (the parameter). A name without a dot is a parameter of the root module "".
std::string module_of(const std::string& tensor_name);
std::string param_of(const std::string& tensor_name);

// Orders module paths (or tensor names) as mlx-lm's module tree lists them for the Llama family
// (model.embed_tokens, layers by number with self_attn q/k/v/o before mlp gate/down/up before
// the norms, model.norm, lm_head; weight, scales, biases, bias within a module). Unknown names sort
// after known ones, alphabetically, and numbers numerically. This is the order mlx-lm writes
// tensors in and adds per-module quantization entries in.
bool mlx_order_less(const std::string& a, const std::string& b);

// mlx-lm's load rule over the tensors: the modules with a `.weight` that `config` lists as
// quantized, or that it does not list and that have `.scales`. Each is checked: shapes and dtypes
// as above, the spec supported by hearth (check_supported); a listed module without `.scales`, and
// `.scales` on a module listed as `false`, are format errors. Errors name the tensor and the
// weights' folder. Sorted in mlx_order_less order.
std::vector<QuantizedModule> find_quantized_modules(const io::WeightSet& weights,
                                                    const QuantizationConfig& config);

// The ops view of a 2-D quantized module found above.
ops::QuantizedWeight quantized_weight(const io::WeightSet& weights, const QuantizedModule& module);

struct ModelQuantization {
  QuantizationConfig config;
  std::vector<QuantizedModule> modules;  // in module order
  bool from_awq = false;                 // the weights were AutoAWQ/GPTQ and have been rewritten
};

// What a model loader does after the architecture's sanitize, as mlx-lm's load_model: the MLX
// `quantization` dict of config.json, or an AutoAWQ/GPTQ `quantization_config` whose tensors are
// converted in place (convert_awq_gptq; other quant_methods are `unsupported` errors), then every
// quantized module found and checked. A float model gives nullopt; `.scales` tensors without a
// quantization entry are a format error. `origin` names config.json in errors.
std::optional<ModelQuantization> load_quantization(const nlohmann::ordered_json& config,
                                                   io::WeightSet& weights,
                                                   const std::string& origin);

}  // namespace hearth::quant
