#include "quant/quant_config.h"

#include <algorithm>

#include "core/error.h"
#include "ops/quantized.h"

namespace hearth::quant {

namespace {

using Json = nlohmann::ordered_json;

bool is_spec_key(const std::string& key) {
  return key == "group_size" || key == "bits" || key == "mode";
}

// An optional positive integer field; null or absent gives nullopt.
std::optional<int> positive_int(const Json& dict, const char* key, const std::string& origin) {
  auto it = dict.find(key);
  if (it == dict.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer() || it->get<int64_t>() <= 0 || it->get<int64_t>() > 4096)
    fail(ErrorCode::config, "{}: '{}' should be a positive integer, got {}", origin, key,
         it->dump());
  return int(it->get<int64_t>());
}

std::string mode_of(const Json& dict, const std::string& origin) {
  auto it = dict.find("mode");
  if (it == dict.end() || it->is_null()) return "affine";
  if (!it->is_string()) fail(ErrorCode::config, "{}: 'mode' should be a string", origin);
  std::string mode = it->get<std::string>();
  if (!mode_defaults(mode))
    fail(ErrorCode::config,
         "{}: unknown quantization mode '{}' (MLX knows affine, mxfp4, nvfp4, "
         "mxfp8)",
         origin, mode);
  return mode;
}

// A dict of `to_quantized` parameters: what is missing takes the defaults of the entry's mode.
QuantSpec parse_spec(const Json& dict, const std::string& origin, bool allow_other_keys) {
  QuantSpec spec = *mode_defaults(mode_of(dict, origin));
  if (auto gs = positive_int(dict, "group_size", origin)) spec.group_size = *gs;
  if (auto bits = positive_int(dict, "bits", origin)) spec.bits = *bits;
  if (!allow_other_keys) {
    for (const auto& [key, value] : dict.items()) {
      if (is_spec_key(key)) continue;
      // nn.quantize drops a false quantize_input before calling to_quantized.
      if (key == "quantize_input" && value.is_boolean() && !value.get<bool>()) continue;
      fail(ErrorCode::unsupported, "{}: unsupported quantization parameter '{}'", origin, key);
    }
  }
  return spec;
}

}  // namespace

Json QuantSpec::to_json() const {
  Json j = Json::object();
  j["group_size"] = group_size;
  j["bits"] = bits;
  j["mode"] = mode;
  return j;
}

std::string QuantSpec::str() const {
  return fmt::format("{}-bit, group size {}, {}", bits, group_size, mode);
}

std::optional<QuantSpec> mode_defaults(const std::string& mode) {
  if (mode == "affine") return QuantSpec{64, 4, "affine"};
  if (mode == "mxfp4") return QuantSpec{32, 4, "mxfp4"};
  if (mode == "nvfp4") return QuantSpec{16, 4, "nvfp4"};
  if (mode == "mxfp8") return QuantSpec{32, 8, "mxfp8"};
  return std::nullopt;
}

void check_supported(const QuantSpec& spec, const std::string& what) {
  if (spec.mode != "affine")
    fail(ErrorCode::unsupported,
         "{}: quantization mode '{}' is not supported (hearth computes "
         "with MLX's affine mode)",
         what, spec.mode);
  const auto& bits = ops::kQuantBits;
  if (std::find(std::begin(bits), std::end(bits), spec.bits) == std::end(bits))
    fail(ErrorCode::unsupported, "{}: {} bits is not supported (affine: 2, 3, 4, 5, 6 or 8)", what,
         spec.bits);
  const auto& sizes = ops::kQuantGroupSizes;
  if (std::find(std::begin(sizes), std::end(sizes), spec.group_size) == std::end(sizes))
    fail(ErrorCode::unsupported, "{}: group size {} is not supported (affine: 32, 64 or 128)", what,
         spec.group_size);
}

QuantizationConfig::QuantizationConfig(const QuantSpec& defaults) : defaults_(defaults) {
  json_ = defaults.to_json();
}

QuantizationConfig QuantizationConfig::parse(const Json& value, const std::string& origin) {
  if (!value.is_object()) fail(ErrorCode::config, "{}: expected an object", origin);
  for (const char* key : {"group_size", "bits"})
    if (!value.contains(key)) fail(ErrorCode::config, "{}: key '{}' is missing", origin, key);
  QuantizationConfig config;
  config.defaults_ = parse_spec(value, origin, /*allow_other_keys=*/true);
  for (const auto& [key, entry] : value.items()) {
    if (is_spec_key(key)) continue;
    std::string where = origin + "." + key;
    if (entry.is_boolean()) {
      config.overrides_[key] = entry.get<bool>() ? std::optional(config.defaults_) : std::nullopt;
    } else if (entry.is_object()) {
      config.overrides_[key] = parse_spec(entry, where, /*allow_other_keys=*/false);
    }
    // Other values are not module entries (mlx-lm looks keys up by module path only); they are
    // kept as they are when the dict is written back.
  }
  config.json_ = value;
  return config;
}

std::optional<QuantizationConfig> QuantizationConfig::from_model_config(const Json& config,
                                                                        const std::string& origin) {
  auto it = config.find("quantization");
  if (it == config.end() || it->is_null()) return std::nullopt;
  return parse(*it, origin + ": quantization");
}

std::optional<QuantSpec> QuantizationConfig::spec_for(const std::string& module_path,
                                                      bool has_scales) const {
  auto it = overrides_.find(module_path);
  if (it != overrides_.end()) return it->second;
  if (has_scales) return defaults_;
  return std::nullopt;
}

std::vector<std::string> QuantizationConfig::listed_paths() const {
  std::vector<std::string> out;
  for (const auto& [key, entry] : json_.items())
    if (overrides_.count(key)) out.push_back(key);
  return out;
}

void QuantizationConfig::set_override(const std::string& module_path,
                                      const std::optional<QuantSpec>& spec) {
  if (is_spec_key(module_path))
    fail(ErrorCode::invalid_argument, "'{}' cannot be a module path", module_path);
  overrides_[module_path] = spec;
  json_[module_path] = spec ? spec->to_json() : Json(false);
}

std::optional<std::string> foreign_quant_method(const Json& config, const std::string& origin) {
  const Json* qc = nullptr;
  std::string where = origin + ": quantization_config";
  if (auto it = config.find("quantization_config"); it != config.end() && !it->is_null()) {
    qc = &*it;
  } else if (auto tc = config.find("text_config"); tc != config.end() && tc->is_object()) {
    if (auto it = tc->find("quantization_config"); it != tc->end() && !it->is_null()) {
      qc = &*it;
      where = origin + ": text_config.quantization_config";
    }
  }
  if (!qc) return std::nullopt;
  if (!qc->is_object()) fail(ErrorCode::config, "{}: expected an object", where);
  auto method = qc->find("quant_method");
  if (method == qc->end() || !method->is_string())
    fail(ErrorCode::config,
         "{}: 'quant_method' is missing (and there is no MLX 'quantization' "
         "entry)",
         where);
  return method->get<std::string>();
}

}  // namespace hearth::quant
