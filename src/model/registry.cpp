#include "model/registry.h"

namespace hearth::model {
namespace {

// Every supported architecture. Look-alikes are aliases of a family's entry points.
// When adding a line here, add its tiny-config test in tests/model/.
const Architecture kArchitectures[] = {
    {"LlamaForCausalLM", parse_llama_config, sanitize_llama_family},
    {"MistralForCausalLM", parse_mistral_config, sanitize_llama_family},
    {"Qwen2ForCausalLM", parse_qwen2_config, sanitize_llama_family},
    {"Qwen3ForCausalLM", parse_qwen3_config, sanitize_llama_family},
};

}  // namespace

const Architecture* find_architecture(const std::string& name) {
  for (const auto& a : kArchitectures)
    if (name == a.name) return &a;
  return nullptr;
}

std::vector<std::string> supported_architectures() {
  std::vector<std::string> names;
  for (const auto& a : kArchitectures) names.push_back(a.name);
  return names;
}

}  // namespace hearth::model
