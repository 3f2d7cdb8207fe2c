// `hearth convert`: a model folder in, an MLX-format folder out, as mlx-lm's `convert` writes it
// (quantized with -q, dequantized with -d, cast with --dtype, AWQ/GPTQ checkpoints repacked).
//
// Output (mlx-lm's save): weights in shards of at most 5 GiB, `model.safetensors` when one shard
// suffices, else `model-0000i-of-0000N.safetensors`, each with metadata {"format": "mlx"};
// `model.safetensors.index.json` ({"metadata": {"total_size", "total_parameters"}, "weight_map"}
// sorted); config.json with the top-level keys sorted and `quantization` copied to
// `quantization_config`; the tokenizer and other small files copied; a model card README.md.
// Everything is written into a temporary sibling folder that is renamed into place at the end, so
// an output folder that exists is complete.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <variant>

#include "core/tensor.h"
#include "io/weights.h"
#include "ops/quantized.h"
#include "quant/quant_config.h"

namespace hearth::quant {

// mlx-lm's MAX_FILE_SIZE_GB = 5, shifted by 30: 5 GiB.
inline constexpr size_t kMaxShardBytes = size_t(5) << 30;

struct ConvertOptions {
  std::filesystem::path source;  // a model folder (already resolved)
  std::filesystem::path output;  // must not exist
  std::string hf_repo;           // the Hub id the source came from, if any (model card base_model)
  bool quantize = false;
  bool dequantize = false;
  std::optional<int> group_size;      // --q-group-size (default: the mode's, 64)
  std::optional<int> bits;            // --q-bits (default: the mode's, 4)
  std::string mode = "affine";        // --q-mode
  std::optional<std::string> recipe;  // --quant-predicate mixed_X_Y
  std::optional<DType> dtype;         // --dtype
  // Which of MLX's two quantize implementations to reproduce (docs/ops.md): its Metal/CUDA
  // kernels by default, since mlx_lm.convert runs on the GPU of Apple silicon and that is where
  // published MLX models come from; `cpu` gives what MLX's CPU backend writes.
  ops::MlxQuantizer quantizer = ops::MlxQuantizer::gpu;
  size_t max_shard_bytes = kMaxShardBytes;
};

// What a quantization predicate says about one module: leave it (false), quantize it with the
// defaults (true), or quantize it with these parameters (recorded in the config).
using PredicateResult = std::variant<bool, QuantSpec>;

// What convert needs to know about the architecture; mlx-lm gets it from the model class.
struct ModelHooks {
  // The architecture's sanitize (renames, drops tied lm_head / rotary caches, stacks experts).
  std::function<void(io::WeightSet&)> sanitize;
  // len(model.layers): the mixed recipes place their extra bits by layer index.
  int num_layers = 0;
  // Modules that have `to_quantized` in mlx (Linear, Embedding, SwitchLinear), given the module
  // path and its weight. Default: every floating `.weight` of 2 dimensions (the Llama family's
  // Linear and Embedding layers; its norms are 1-D).
  std::function<bool(const std::string& module_path, const Tensor& weight)> quantizable;
  // The model's own `quant_predicate` (used when no --quant-predicate recipe is given).
  std::function<PredicateResult(const std::string& module_path)> quant_predicate;
};

struct ConvertProgress {
  // Called after each output tensor is computed: (tensors done, total).
  std::function<void(size_t done, size_t total)> on_tensor;
  // mlx-lm's "[INFO] ..." lines.
  std::function<void(const std::string& line)> on_info;
  // Set (e.g. by a signal handler) to stop: convert throws and leaves no output.
  const std::atomic<bool>* cancel = nullptr;
};

struct ConvertResult {
  std::filesystem::path output;
  size_t tensors = 0;
  size_t shards = 0;
  size_t total_size = 0;         // bytes of all tensors
  int64_t total_parameters = 0;  // mlx-lm's get_total_parameters (unquantized count)
  size_t quantized_modules = 0;  // quantized in the output
};

// Checks the options that need no model (existing output, -q with -d, --q-mode, bits and group
// size) and throws invalid_argument / unsupported errors naming the flag.
void validate_convert_options(const ConvertOptions& options);

// Runs the conversion. Errors leave nothing at `output` (the temporary folder is removed).
ConvertResult convert_model(const ConvertOptions& options, const ModelHooks& hooks,
                            const ConvertProgress& progress = {});

// mlx-lm's load_config: config.json with generation_config.json's eos_token_id (when truthy)
// written over the config's; and `quantization_config` taken from text_config when only there.
nlohmann::ordered_json load_model_config(const std::filesystem::path& dir);

// mlx-lm's save_config: drops `_name_or_path` and `vision_config`, copies `quantization` to
// `quantization_config`, sorts the top-level keys; Python json.dump text (indent 4).
std::string config_json_text(nlohmann::ordered_json config);

// The files of a source folder that are copied into the output (tokenizer, chat template,
// generation config, ...): mlx-lm's download patterns without the weights, their index, config.json
// and README.md. Sorted by name.
std::vector<std::filesystem::path> files_to_copy(const std::filesystem::path& dir);

}  // namespace hearth::quant
