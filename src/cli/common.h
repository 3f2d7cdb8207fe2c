// Pieces shared by the subcommands: resolving --model, loading model and tokenizer.
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "gen/generate.h"
#include "model/model.h"
#include "text/tokenizer.h"

namespace hearth::cli {

class ArgParser;

// --model as given, or the bundled default model when absent.
std::filesystem::path model_dir_from_flag(const std::optional<std::string>& model);
// --device: "cpu" or "cuda[:N]"; empty (no flag): cuda:0 when a CUDA GPU is usable, else cpu.
Device device_from_flag(const std::string& device);

// --matmul-precision (ops/precision.h) on every command that loads a model: bf16 (the default,
// how PyTorch and MLX run a bf16 model: CUDA prefill GEMMs round their input to bf16 once) or
// exact (as exact as f32: three GEMMs over an exact split).
void add_matmul_precision_flag(ArgParser& parser, std::string* target);
// LoadOptions for --device and --matmul-precision.
model::LoadOptions load_options(Device device, const std::string& matmul_precision);

// The KV flags shared by generate, cache_prompt and chat (--max-kv-size, --kv-bits,
// --kv-group-size, --quantized-kv-start), checked like mlx-lm's argparse types and stored in
// `options`.
void set_kv_cache_flags(const std::optional<int>& max_kv_size, const std::optional<int>& kv_bits,
                        int kv_group_size, int quantized_kv_start, gen::GenerationOptions& options);

// An empty cache for `model` with room for `capacity_tokens` (the pool reserves address space
// only on the CPU), with mlx-lm's per-layer kinds (gen::make_prompt_cache: rotating for
// --max-kv-size and for sliding-window layers).
std::shared_ptr<kv::KvCache> make_kv_cache(const model::Model& model,
                                           const gen::GenerationOptions& options,
                                           int64_t capacity_tokens);

// Python's json.dumps(obj) of a flat object (", " and ": " separators, ensure_ascii): how mlx-lm
// writes the tokenizer_config metadata of a prompt-cache file.
std::string python_json_line(const nlohmann::ordered_json& object);

}  // namespace hearth::cli
