// Llama and Mistral: the reference dense decoder. Mistral differs only by its sliding window.
#include "model/registry.h"

namespace hearth::model {

void parse_layer_types(const io::JsonObject& config, DecoderConfig& c,
                       const std::vector<int>& fallback) {
  if (!config.has("layer_types")) {
    c.sliding_window = fallback;
    return;
  }
  auto types = config.get<std::vector<std::string>>("layer_types");
  if (int64_t(types.size()) != c.num_layers)
    fail(ErrorCode::config, "{}: layer_types has {} entries for {} layers", config.origin(),
         types.size(), c.num_layers);
  int window = int(config.get_or<int64_t>("sliding_window", 0));
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i] == "full_attention") {
      c.sliding_window[i] = 0;
    } else if (types[i] == "sliding_attention") {
      if (window <= 0)
        fail(ErrorCode::config, "{}: layer {} is sliding_attention but sliding_window is not set",
             config.origin(), i);
      c.sliding_window[i] = window;
    } else {
      fail(ErrorCode::unsupported, "{}: layer type '{}' (layer {}) is not supported",
           config.origin(), types[i], i);
    }
  }
}

DecoderConfig parse_llama_config(const io::JsonObject& config, const std::string& name) {
  DecoderConfig c = parse_common_config(config, name);
  c.qkv_bias = c.o_bias = config.get_or<bool>("attention_bias", false);
  c.mlp_bias = config.get_or<bool>("mlp_bias", false);
  parse_layer_types(config, c, c.sliding_window);
  return c;
}

DecoderConfig parse_mistral_config(const io::JsonObject& config, const std::string& name) {
  DecoderConfig c = parse_common_config(config, name);
  // HF Mistral applies sliding_window (when not null) to every layer.
  int window = int(config.get_or<int64_t>("sliding_window", 0));
  c.sliding_window.assign(size_t(c.num_layers), window > 0 ? window : 0);
  return c;
}

void sanitize_llama_family(io::WeightSet& weights, const DecoderConfig& config) {
  for (const auto& name : weights.names()) {
    // Precomputed rotary tables saved by old checkpoints; hearth computes its own.
    if (name.find("rotary_emb.inv_freq") != std::string::npos) weights.erase(name);
  }
  if (config.tie_word_embeddings) weights.erase("lm_head.weight");
}

}  // namespace hearth::model
