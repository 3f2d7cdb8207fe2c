// Qwen2 (biased q/k/v projections) and Qwen3 (per-head q/k RMSNorm, explicit head_dim).
#include "model/registry.h"

namespace hearth::model {
namespace {

// HF Qwen2/Qwen3: with use_sliding_window, layers from max_window_layers on use the window.
std::vector<int> qwen_sliding_layers(const io::JsonObject& config, const DecoderConfig& c) {
  std::vector<int> windows(size_t(c.num_layers), 0);
  if (!config.get_or<bool>("use_sliding_window", false)) return windows;
  int window = int(config.get_or<int64_t>("sliding_window", 4096));
  int64_t first = config.get_or<int64_t>("max_window_layers", 28);
  for (int64_t i = 0; i < c.num_layers; ++i)
    if (window > 0 && i >= first) windows[size_t(i)] = window;
  return windows;
}

}  // namespace

DecoderConfig parse_qwen2_config(const io::JsonObject& config, const std::string& name) {
  DecoderConfig c = parse_common_config(config, name);
  c.qkv_bias = true;
  c.o_bias = false;
  auto windows = qwen_sliding_layers(config, c);
  // HF Qwen2 nulls sliding_window unless use_sliding_window, so layer_types can only name it then.
  if (config.get_or<bool>("use_sliding_window", false)) {
    parse_layer_types(config, c, windows);
  } else {
    c.sliding_window = windows;
  }
  return c;
}

DecoderConfig parse_qwen3_config(const io::JsonObject& config, const std::string& name) {
  // Qwen3Config's head_dim defaults to 128, not hidden_size / num_attention_heads.
  DecoderConfig c = parse_common_config(config, name, 128);
  c.qkv_bias = c.o_bias = config.get_or<bool>("attention_bias", false);
  c.qk_norm = true;
  auto windows = qwen_sliding_layers(config, c);
  if (config.get_or<bool>("use_sliding_window", false)) {
    parse_layer_types(config, c, windows);
  } else {
    c.sliding_window = windows;
  }
  return c;
}

}  // namespace hearth::model
