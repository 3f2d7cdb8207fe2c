#include "quant/mlx_format.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <string_view>

#include "quant/awq.h"

namespace hearth::quant {

namespace {

// Attribute order of mlx-lm's Llama-family modules (llama.py, qwen2.py, qwen3.py): Model (model,
// lm_head), LlamaModel (embed_tokens, layers, norm), TransformerBlock (self_attn, mlp, norms),
// Attention (q, k, v, o, q_norm, k_norm), MLP (gate, down, up), and a quantized layer's parameters.
int known_rank(std::string_view name) {
  static const std::map<std::string_view, int> kRank = {
      {"model", 0},
      {"lm_head", 1},
      {"embed_tokens", 0},
      {"layers", 1},
      {"norm", 2},
      {"self_attn", 0},
      {"mlp", 1},
      {"input_layernorm", 2},
      {"post_attention_layernorm", 3},
      {"q_proj", 0},
      {"k_proj", 1},
      {"v_proj", 2},
      {"o_proj", 3},
      {"q_norm", 4},
      {"k_norm", 5},
      {"gate_proj", 0},
      {"down_proj", 1},
      {"up_proj", 2},
      {"weight", 0},
      {"scales", 1},
      {"biases", 2},
      {"bias", 3},
  };
  auto it = kRank.find(name);
  return it == kRank.end() ? -1 : it->second;
}

bool all_digits(std::string_view s) {
  return !s.empty() && s.size() < 19 &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit((unsigned char)c); });
}

// <0, 0, >0 like strcmp, for one path component.
int compare_component(std::string_view a, std::string_view b) {
  if (a == b) return 0;
  if (all_digits(a) && all_digits(b)) {
    long long x = std::stoll(std::string(a)), y = std::stoll(std::string(b));
    if (x != y) return x < y ? -1 : 1;
    return a < b ? -1 : 1;
  }
  int ra = known_rank(a), rb = known_rank(b);
  if (ra >= 0 && rb >= 0 && ra != rb) return ra < rb ? -1 : 1;
  if (ra >= 0 && rb < 0) return -1;
  if (rb >= 0 && ra < 0) return 1;
  return a < b ? -1 : 1;
}

bool is_float_tensor(const Tensor& t) {
  return is_floating(t.dtype());
}

}  // namespace

std::string module_of(const std::string& tensor_name) {
  size_t dot = tensor_name.rfind('.');
  return dot == std::string::npos ? std::string() : tensor_name.substr(0, dot);
}

std::string param_of(const std::string& tensor_name) {
  size_t dot = tensor_name.rfind('.');
  return dot == std::string::npos ? tensor_name : tensor_name.substr(dot + 1);
}

bool mlx_order_less(const std::string& a, const std::string& b) {
  std::string_view x(a), y(b);
  while (true) {
    if (x.empty() || y.empty()) return x.empty() && !y.empty();
    size_t dx = x.find('.'), dy = y.find('.');
    std::string_view cx = x.substr(0, dx), cy = y.substr(0, dy);
    if (int c = compare_component(cx, cy); c != 0) return c < 0;
    x = dx == std::string_view::npos ? std::string_view() : x.substr(dx + 1);
    y = dy == std::string_view::npos ? std::string_view() : y.substr(dy + 1);
  }
}

std::vector<QuantizedModule> find_quantized_modules(const io::WeightSet& weights,
                                                    const QuantizationConfig& config) {
  const std::string folder = weights.dir().string();
  std::vector<QuantizedModule> found;
  for (const auto& name : weights.names()) {
    if (param_of(name) != "weight") continue;
    const std::string path = module_of(name);
    const bool has_scales = weights.contains(path + ".scales");
    std::optional<QuantSpec> spec = config.spec_for(path, has_scales);
    if (!spec) {
      if (has_scales)
        fail(ErrorCode::format,
             "{}: '{}.scales' exists but config.json lists '{}' as not "
             "quantized (false)",
             folder, path, path);
      continue;
    }
    check_supported(*spec, "module '" + path + "'");
    if (!has_scales)
      fail(ErrorCode::format,
           "{}: config.json quantizes '{}' ({}) but the weights have no "
           "'{}.scales'",
           folder, path, spec->str(), path);
    const Tensor w = weights.get(name), s = weights.get(path + ".scales");
    const std::optional<Tensor> b = weights.find(path + ".biases");
    if (w.dtype() != DType::u32 || w.ndim() < 2)
      fail(ErrorCode::format,
           "{}: '{}' should be uint32 packed codes of 2 or more dimensions for "
           "{}, got {}",
           folder, name, spec->str(), w.describe());
    if ((w.dim(-1) * 32) % spec->bits != 0)
      fail(ErrorCode::format,
           "{}: '{}' has {} words per row, which does not hold whole {}-bit "
           "codes",
           folder, name, w.dim(-1), spec->bits);
    const int64_t in = w.dim(-1) * 32 / spec->bits;
    if (in % spec->group_size != 0)
      fail(ErrorCode::format,
           "{}: '{}' unpacks to {} input features, not a multiple of the group "
           "size {}",
           folder, name, in, spec->group_size);
    Dims expect;
    for (int d = 0; d + 1 < w.ndim(); ++d) expect.push_back(w.dim(d));
    expect.push_back(in / spec->group_size);
    if (!(s.shape() == expect) || !is_float_tensor(s))
      fail(ErrorCode::format,
           "{}: '{}.scales' is {}, expected a float tensor of shape {} for "
           "'{}' {} ({})",
           folder, path, s.describe(), expect.str(), name, w.shape().str(), spec->str());
    if (!b)
      fail(ErrorCode::format, "{}: '{}' is affine-quantized but '{}.biases' is missing", folder,
           path, path);
    if (!(b->shape() == expect) || b->dtype() != s.dtype())
      fail(ErrorCode::format, "{}: '{}.biases' is {}, expected {} of shape {} like the scales",
           folder, path, b->describe(), dtype_name(s.dtype()), expect.str());
    found.push_back(QuantizedModule{path, *spec, w.dim(-2), in});
  }
  std::sort(found.begin(), found.end(),
            [](const auto& x, const auto& y) { return mlx_order_less(x.path, y.path); });
  return found;
}

ops::QuantizedWeight quantized_weight(const io::WeightSet& weights, const QuantizedModule& m) {
  ops::QuantizedWeight w;
  w.packed = weights.get(m.path + ".weight");
  w.scales = weights.get(m.path + ".scales");
  w.biases = weights.get(m.path + ".biases");
  w.bits = m.spec.bits;
  w.group_size = m.spec.group_size;
  if (w.packed.ndim() != 2)
    fail(ErrorCode::unsupported,
         "{}: '{}' has {} dimensions; only 2-D quantized weights are "
         "supported here",
         weights.dir().string(), m.path, w.packed.ndim());
  return w;
}

std::optional<ModelQuantization> load_quantization(const nlohmann::ordered_json& config,
                                                   io::WeightSet& weights,
                                                   const std::string& origin) {
  std::optional<QuantizationConfig> q = QuantizationConfig::from_model_config(config, origin);
  bool from_awq = false;
  if (!q) {
    if (auto method = foreign_quant_method(config, origin)) {
      if (*method != "awq" && *method != "gptq")
        fail(ErrorCode::unsupported,
             "{}: quantization_config.quant_method '{}' is not supported "
             "(hearth reads MLX affine, AWQ and GPTQ checkpoints)",
             origin, *method);
      auto it = config.find("quantization_config");
      const nlohmann::ordered_json& qc = it != config.end() && !it->is_null()
                                             ? *it
                                             : config.at("text_config").at("quantization_config");
      q = convert_awq_gptq(weights, qc, origin + ": quantization_config");
      from_awq = true;
    }
  }
  if (!q) {
    for (const auto& name : weights.names())
      if (param_of(name) == "scales" && weights.contains(module_of(name) + ".weight"))
        fail(ErrorCode::format,
             "{}: the weights hold '{}' but config.json has no 'quantization' "
             "entry",
             weights.dir().string(), name);
    return std::nullopt;
  }
  std::vector<QuantizedModule> modules = find_quantized_modules(weights, *q);
  return ModelQuantization{std::move(*q), std::move(modules), from_awq};
}

}  // namespace hearth::quant
