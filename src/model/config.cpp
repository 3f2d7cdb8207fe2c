#include "model/config.h"

namespace hearth::model {

std::vector<int32_t> parse_token_ids(const io::JsonObject& config, const std::string& key) {
  std::vector<int32_t> ids;
  if (!config.has(key)) return ids;
  const nlohmann::json& v = config.raw()[key];
  auto add = [&](const nlohmann::json& x) {
    if (!x.is_number_integer())
      fail(ErrorCode::config, "{}: key '{}' should hold token ids, got {}", config.origin(), key,
           v.dump());
    ids.push_back(x.get<int32_t>());
  };
  if (v.is_array()) {
    for (const auto& x : v) add(x);
  } else {
    add(v);
  }
  return ids;
}

ops::RopeParams parse_rope(const io::JsonObject& config, int64_t head_dim,
                           int64_t max_position_embeddings) {
  ops::RopeParams p;
  p.max_position_embeddings = max_position_embeddings;
  // transformers >= 5 writes rope_parameters (with rope_theta inside); older configs write
  // rope_theta at the top level and an optional rope_scaling dict. Merge both, the dict winning.
  nlohmann::json params = nlohmann::json::object();
  std::string dict_key;
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    if (!config.has(key)) continue;
    const nlohmann::json& d = config.raw()[key];
    if (!d.is_object())
      fail(ErrorCode::config, "{}: key '{}' should be an object", config.origin(), key);
    for (auto& [k, v] : d.items()) params[k] = v;
    dict_key = key;
  }
  io::JsonObject rp(params, config.origin() + (dict_key.empty() ? "" : "." + dict_key));
  p.theta = rp.has("rope_theta") ? rp.get<double>("rope_theta")
                                 : config.get_or<double>("rope_theta", 10000.0);
  double partial = rp.has("partial_rotary_factor")
                       ? rp.get<double>("partial_rotary_factor")
                       : config.get_or<double>("partial_rotary_factor", 1.0);
  p.rotary_dim = int64_t(double(head_dim) * partial);
  if (p.rotary_dim <= 0 || p.rotary_dim > head_dim || p.rotary_dim % 2 != 0)
    fail(ErrorCode::config,
         "{}: partial_rotary_factor {} gives rotary dimension {} for head_dim {}", config.origin(),
         partial, p.rotary_dim, head_dim);

  std::string type = "default";
  if (rp.has("rope_type"))
    type = rp.get<std::string>("rope_type");
  else if (rp.has("type"))
    type = rp.get<std::string>("type");
  if (type == "default") {
    p.type = ops::RopeType::standard;
  } else if (type == "linear") {
    p.type = ops::RopeType::linear;
  } else if (type == "dynamic") {
    p.type = ops::RopeType::dynamic;
  } else if (type == "llama3") {
    p.type = ops::RopeType::llama3;
  } else if (type == "yarn") {
    p.type = ops::RopeType::yarn;
  } else {
    fail(ErrorCode::unsupported,
         "{}: rope type '{}' is not supported (supported: default, linear, "
         "dynamic, llama3, yarn)",
         rp.origin(), type);
  }
  if (p.type != ops::RopeType::standard) {
    // yarn may omit factor when original_max_position_embeddings is given (DeepSeek-V3 style).
    if (p.type == ops::RopeType::yarn && !rp.has("factor") &&
        rp.has("original_max_position_embeddings")) {
      p.factor = double(max_position_embeddings) /
                 double(rp.get<int64_t>("original_max_position_embeddings"));
    } else {
      p.factor = rp.get<double>("factor");
    }
  }
  // HF standardize_rope_params: a top-level original_max_position_embeddings wins, then the one
  // in the rope dict, then max_position_embeddings.
  p.original_max_position_embeddings =
      config.has("original_max_position_embeddings")
          ? config.get<int64_t>("original_max_position_embeddings")
          : rp.get_or<int64_t>("original_max_position_embeddings", max_position_embeddings);
  if (p.type == ops::RopeType::llama3) {
    p.low_freq_factor = rp.get<double>("low_freq_factor");
    p.high_freq_factor = rp.get<double>("high_freq_factor");
  }
  if (p.type == ops::RopeType::yarn) {
    // `or 32` / `or 1` in HF: a zero or null value falls back to the default.
    double bf = rp.get_or<double>("beta_fast", 0.0), bs = rp.get_or<double>("beta_slow", 0.0);
    p.beta_fast = bf != 0.0 ? bf : 32.0;
    p.beta_slow = bs != 0.0 ? bs : 1.0;
    p.mscale = rp.find<double>("mscale");
    p.mscale_all_dim = rp.find<double>("mscale_all_dim");
    p.attention_factor = rp.find<double>("attention_factor");
    p.truncate = rp.get_or<bool>("truncate", true);
  }
  return p;
}

DecoderConfig parse_common_config(const io::JsonObject& config, const std::string& architecture,
                                  int64_t default_head_dim) {
  DecoderConfig c;
  c.architecture = architecture;
  c.model_type = config.get_or<std::string>("model_type", "");
  c.vocab_size = config.get<int64_t>("vocab_size");
  c.hidden_size = config.get<int64_t>("hidden_size");
  c.intermediate_size = config.get<int64_t>("intermediate_size");
  c.num_layers = config.get<int64_t>("num_hidden_layers");
  c.num_heads = config.get<int64_t>("num_attention_heads");
  c.num_kv_heads = config.get_or<int64_t>("num_key_value_heads", c.num_heads);
  if (c.num_heads <= 0 || c.hidden_size <= 0 || c.num_layers <= 0 || c.vocab_size <= 0 ||
      c.intermediate_size <= 0 || c.num_kv_heads <= 0)
    fail(ErrorCode::config, "{}: sizes must be positive", config.origin());
  if (c.num_heads % c.num_kv_heads != 0)
    fail(ErrorCode::config,
         "{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", config.origin(),
         c.num_heads, c.num_kv_heads);
  c.head_dim = config.get_or<int64_t>(
      "head_dim", default_head_dim > 0 ? default_head_dim : c.hidden_size / c.num_heads);
  if (c.head_dim <= 0 || c.head_dim > 256 || c.head_dim % 2 != 0)
    fail(ErrorCode::unsupported, "{}: head_dim {} is not supported (even, at most 256)",
         config.origin(), c.head_dim);
  c.rms_norm_eps = config.get_or<double>("rms_norm_eps", 1e-6);
  c.max_position_embeddings = config.get_or<int64_t>("max_position_embeddings", 2048);
  c.tie_word_embeddings = config.get_or<bool>("tie_word_embeddings", false);
  std::string act = config.get_or<std::string>("hidden_act", "silu");
  if (act != "silu")
    fail(ErrorCode::unsupported, "{}: hidden_act '{}' is not supported (silu only)",
         config.origin(), act);
  c.rope = parse_rope(config, c.head_dim, c.max_position_embeddings);
  c.eos_token_ids = parse_token_ids(config, "eos_token_id");
  c.bos_token_ids = parse_token_ids(config, "bos_token_id");
  c.sliding_window.assign(size_t(c.num_layers), 0);
  return c;
}

}  // namespace hearth::model
