// Prompt-cache files in mlx-lm's layout (mlx_lm.models.cache save_prompt_cache /
// load_prompt_cache): one safetensors file whose tensors are tree_flatten([c.state for c in
// cache]) and whose string metadata is tree_flatten([meta_states, user_metadata, class_names]):
//   tensors   "<layer>.<path>"   e.g. "3.0" keys, "3.1" values; "3.0.1" quantized key scales
//   metadata  "0.<layer>" or "0.<layer>.<k>"   meta_state (a string, or a tuple of strings)
//             "1.<key>"                        user metadata (cache_prompt: model,
//             tokenizer_config) "2.<layer>"                      class name (KVCache,
//             RotatingKVCache, ...)
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "kv/cache_state.h"

namespace hearth::kv {

struct PromptCacheContents {
  std::vector<LayerCacheState> layers;
  std::map<std::string, std::string> metadata;  // the user metadata, without the "1." prefix
};

// mx.save_safetensors appends ".safetensors" to a name without it; so does hearth, so that the
// same command line names the same file with either tool.
std::filesystem::path prompt_cache_path(const std::filesystem::path& path);

// Writes atomically to prompt_cache_path(path) and returns that path. Every layer needs a class
// name and exactly one kind of meta_state; arrays must be host tensors.
std::filesystem::path save_prompt_cache(const std::filesystem::path& path,
                                        const std::vector<LayerCacheState>& layers,
                                        const std::map<std::string, std::string>& metadata = {});

// Reads a file written by save_prompt_cache or by mlx-lm. The arrays view the file mapping.
// Structural errors are `format` errors naming the file and the key: not a safetensors file,
// no class names (a foreign safetensors file such as model weights), layer numbers with gaps,
// a layer without arrays, keys outside the layout, unknown class names.
PromptCacheContents load_prompt_cache(const std::filesystem::path& path);

}  // namespace hearth::kv
