// The hyper-parameters of a dense decoder (Llama family), read from a HF config.json.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "io/json_file.h"
#include "ops/rope.h"

namespace hearth::model {

struct DecoderConfig {
  std::string architecture;  // e.g. "Qwen3ForCausalLM"
  std::string model_type;    // e.g. "qwen3"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  double rms_norm_eps = 1e-6;
  int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // q/k/v projections carry a bias
  bool o_bias = false;    // the output projection carries a bias
  bool mlp_bias = false;
  bool qk_norm = false;  // RMSNorm on q and k per head (Qwen3)
  ops::RopeParams rope;
  std::vector<int> sliding_window;     // per layer; 0 = full attention
  std::vector<int32_t> eos_token_ids;  // from config.json (generation_config.json adds more)
  std::vector<int32_t> bos_token_ids;
};

// Reads `rope_parameters` (transformers >= 5) or `rope_theta` + `rope_scaling` (older configs)
// into RopeParams, as HF's standardize_rope_params does. Unknown rope types are `unsupported`.
ops::RopeParams parse_rope(const io::JsonObject& config, int64_t head_dim,
                           int64_t max_position_embeddings);

// Reads the keys every Llama-family config has; architecture-specific keys (biases, qk norm,
// sliding windows) are set by the architecture's parse function.
// default_head_dim: used when config.json has no head_dim (0: hidden_size / num_attention_heads).
DecoderConfig parse_common_config(const io::JsonObject& config, const std::string& architecture,
                                  int64_t default_head_dim = 0);

// An int or a list of ints (eos_token_id, bos_token_id); empty when absent or null.
std::vector<int32_t> parse_token_ids(const io::JsonObject& config, const std::string& key);

}  // namespace hearth::model
