// Pieces shared by the subcommands: resolving --model, loading model and tokenizer.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "model/model.h"
#include "text/tokenizer.h"

namespace hearth::cli {

// --model as given, or the bundled default model when absent.
std::filesystem::path model_dir_from_flag(const std::optional<std::string>& model);
// --device: "cpu" or "cuda[:N]".
Device device_from_flag(const std::string& device);

}  // namespace hearth::cli
