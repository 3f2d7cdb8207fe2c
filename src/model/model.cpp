#include "model/model.h"

#include <cstdlib>
#include <fstream>

#include "io/json_file.h"
#include "io/weights.h"
#include "model/decoder.h"
#include "model/registry.h"
#include "ops/backend.h"
#include "quant/mlx_format.h"

namespace hearth::model {

namespace fs = std::filesystem;

namespace {

size_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  size_t kb = 0;
  while (in >> key >> kb) {
    if (key == "MemAvailable:") return kb * 1024;
    in.ignore(256, '\n');
  }
  return 0;
}

io::WeightResidency weight_residency(const fs::path& dir, const LoadOptions& options) {
  if (const char* env = std::getenv("HEARTH_WEIGHTS")) {
    std::string v = env;
    if (v == "mapped") return io::WeightResidency::mapped;
    if (v == "copied") return io::WeightResidency::copied;
    fail(ErrorCode::invalid_argument, "HEARTH_WEIGHTS must be 'mapped' or 'copied', got '{}'", v);
  }
  if (!options.device.is_cpu()) return io::WeightResidency::mapped;  // uploaded from the mapping
  bool copy = options.copy_weights.value_or(io::WeightSet::weight_file_bytes(dir) <
                                            available_memory_bytes() / 2);
  return copy ? io::WeightResidency::copied : io::WeightResidency::mapped;
}

}  // namespace

std::unique_ptr<Model> load_model(const fs::path& dir, const LoadOptions& options) {
  ops::backend_for(options.device);  // a missing GPU or driver is reported before any loading
  if (!fs::exists(dir)) fail(ErrorCode::not_found, "model folder {} does not exist", dir.string());
  if (!fs::is_directory(dir))
    fail(ErrorCode::invalid_argument, "{} is not a model folder", dir.string());
  fs::path config_path = dir / "config.json";
  if (!fs::exists(config_path))
    fail(ErrorCode::not_found, "{}: no config.json (is this a Hugging Face model folder?)",
         dir.string());
  nlohmann::json raw = io::read_json_file(config_path);
  io::JsonObject config(raw, config_path.string());

  std::string arch_name;
  if (config.has("architectures")) {
    auto names = config.get<std::vector<std::string>>("architectures");
    if (names.empty())
      fail(ErrorCode::config, "{}: 'architectures' is empty", config_path.string());
    arch_name = names[0];
  } else {
    fail(ErrorCode::config, "{}: key 'architectures' is missing", config_path.string());
  }
  const Architecture* arch = find_architecture(arch_name);
  if (!arch) {
    std::string supported;
    for (const auto& n : supported_architectures())
      supported += (supported.empty() ? "" : ", ") + n;
    fail(ErrorCode::unsupported, "{}: architecture '{}' is not supported (supported: {})",
         config_path.string(), arch_name, supported);
  }
  DecoderConfig cfg = arch->parse_config(config, arch_name);

  fs::path gen_path = dir / "generation_config.json";
  if (fs::exists(gen_path)) {
    nlohmann::json gen_raw = io::read_json_file(gen_path);
    io::JsonObject gen(gen_raw, gen_path.string());
    // mlx-lm: generation_config.json's eos ids take over from config.json's when present.
    std::vector<int32_t> eos = parse_token_ids(gen, "eos_token_id");
    if (!eos.empty()) cfg.eos_token_ids = eos;
  }

  io::WeightSet weights = io::WeightSet::load_dir(dir, weight_residency(dir, options));
  arch->sanitize(weights, cfg);
  // MLX `quantization` (checked against the tensors) or AutoAWQ/GPTQ tensors rewritten into MLX's
  // affine layout, as mlx-lm's loader does; the layers then read bits and group size from shapes.
  quant::load_quantization(nlohmann::ordered_json::parse(raw.dump()), weights,
                           config_path.string());
  auto model = std::make_unique<DecoderModel>(std::move(cfg), std::move(weights), options.device);
  model->set_matmul_precision(options.matmul_precision);
  return model;
}

}  // namespace hearth::model
