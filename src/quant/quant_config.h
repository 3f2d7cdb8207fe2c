// The `quantization` entry of an MLX model's config.json: the default group size / bits / mode and
// per-module overrides keyed by module path (a dict of parameters, or `false` = left in floating
// point), with mlx-lm's rule for which modules of a folder are quantized.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace hearth::quant {

// The parameters of one quantized module, as `to_quantized(group_size, bits, mode)` takes them.
struct QuantSpec {
  int group_size = 64;
  int bits = 4;
  std::string mode = "affine";

  bool operator==(const QuantSpec&) const = default;
  // {"group_size": .., "bits": .., "mode": ..}: the entry mlx-lm writes for a module.
  nlohmann::ordered_json to_json() const;
  std::string str() const;  // "4-bit, group size 64, affine"
};

// MLX's defaults per mode (mlx.nn `_defaults_for_mode`): affine 64/4, mxfp4 32/4, nvfp4 16/4,
// mxfp8 32/8. nullopt for a mode MLX does not know.
std::optional<QuantSpec> mode_defaults(const std::string& mode);

// Throws `unsupported`, naming `what` (a flag, a config key, a module), unless hearth can compute
// with the spec: mode affine, bits 2/3/4/5/6/8, group size 32/64/128.
void check_supported(const QuantSpec& spec, const std::string& what);

class QuantizationConfig {
 public:
  // A fresh config as `quantize_model` starts it: {"group_size", "bits", "mode"}.
  explicit QuantizationConfig(const QuantSpec& defaults);

  // Parses an MLX quantization dict. `origin` names it in errors ("model/config.json:
  // quantization"). group_size and bits are required (null = the mode's default, as MLX takes
  // None); mode defaults to "affine". Any other key is a module path whose value is a dict of
  // parameters (missing or null ones take the entry's mode defaults, as `to_quantized(**entry)`
  // does), `true` (the defaults) or `false` (not quantized).
  static QuantizationConfig parse(const nlohmann::ordered_json& value, const std::string& origin);

  // The `quantization` dict of a model config.json; nullopt when the config has none.
  static std::optional<QuantizationConfig> from_model_config(const nlohmann::ordered_json& config,
                                                             const std::string& origin);

  const QuantSpec& defaults() const { return defaults_; }

  // mlx-lm's load rule (`class_predicate` in load_model): a module listed in the table is
  // quantized as listed (nullopt for `false`); an unlisted one is quantized with the defaults iff
  // the weights hold `<path>.scales`. Only meaningful for modules that can be quantized (Linear,
  // Embedding, SwitchLinear).
  std::optional<QuantSpec> spec_for(const std::string& module_path, bool has_scales) const;
  bool is_listed(const std::string& module_path) const { return overrides_.count(module_path); }
  // Module paths with an entry, in the order of the dict.
  std::vector<std::string> listed_paths() const;

  // Adds (or replaces) a module's entry, appended in call order as mlx-lm's quantize_model adds
  // them while it walks the modules.
  void set_override(const std::string& module_path, const std::optional<QuantSpec>& spec);

  // The dict as mlx-lm writes it back: the parsed dict unchanged (keys and their order, values,
  // also keys hearth does not interpret), plus entries added with set_override.
  const nlohmann::ordered_json& to_json() const { return json_; }

 private:
  QuantizationConfig() = default;
  QuantSpec defaults_;
  std::map<std::string, std::optional<QuantSpec>> overrides_;
  nlohmann::ordered_json json_ = nlohmann::ordered_json::object();
};

// The quantization method of a `quantization_config` written by another tool ("awq", "gptq",
// "mxfp4", "compressed-tensors", "bitnet", "fp8", ...): what mlx-lm's load_model dispatches on when
// config.json has no MLX `quantization` dict. Also looks in text_config as mlx-lm does. nullopt
// when there is none.
std::optional<std::string> foreign_quant_method(const nlohmann::ordered_json& config,
                                                const std::string& origin);

}  // namespace hearth::quant
