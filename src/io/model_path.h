// Finding a model folder from what the user typed: a local path, or a Hugging Face repo id already
// in the local HF cache (hearth does not download).
#pragma once

#include <filesystem>
#include <string>

namespace hearth::io {

// A local folder is used as is. "org/name" (optionally "org/name@revision") is looked up in the HF
// cache ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub). Errors say where it
// looked.
std::filesystem::path resolve_model_path(const std::string& model);

// The bundled default model: $HEARTH_DEFAULT_MODEL, else models/default next to the executable's
// install or source tree. Throws not_found saying where it looked.
std::filesystem::path default_model_path();

}  // namespace hearth::io
