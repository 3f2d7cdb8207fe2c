// The architecture registry: one table keyed by config.json's `architectures` string.
#pragma once

#include <string>
#include <vector>

#include "io/json_file.h"
#include "io/weights.h"
#include "model/config.h"

namespace hearth::model {

struct Architecture {
  const char* name;  // HF architectures string
  // Reads the hyper-parameters (the common ones plus the family's own).
  DecoderConfig (*parse_config)(const io::JsonObject& config, const std::string& name);
  // Renames / drops checkpoint tensors into the canonical names the decoder loads.
  void (*sanitize)(io::WeightSet& weights, const DecoderConfig& config);
};

// nullptr when unknown.
const Architecture* find_architecture(const std::string& name);
std::vector<std::string> supported_architectures();

// Architecture entry points (one file per family).
DecoderConfig parse_llama_config(const io::JsonObject& config, const std::string& name);
DecoderConfig parse_mistral_config(const io::JsonObject& config, const std::string& name);
DecoderConfig parse_qwen2_config(const io::JsonObject& config, const std::string& name);
DecoderConfig parse_qwen3_config(const io::JsonObject& config, const std::string& name);
// Shared by the Llama family: drops rotary caches and a tied lm_head.
void sanitize_llama_family(io::WeightSet& weights, const DecoderConfig& config);
// Sliding-window layers from `layer_types` when present; `fallback` otherwise.
void parse_layer_types(const io::JsonObject& config, DecoderConfig& c,
                       const std::vector<int>& fallback);

}  // namespace hearth::model
