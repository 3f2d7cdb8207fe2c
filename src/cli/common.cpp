#include "cli/common.h"

#include "ops/backend.h"

#include "cli/args.h"
#include "io/model_path.h"
#include "quant/python_json.h"

namespace hearth::cli {

std::filesystem::path model_dir_from_flag(const std::optional<std::string>& model) {
  return model ? io::resolve_model_path(*model) : io::default_model_path();
}

Device device_from_flag(const std::string& device) {
  if (!device.empty()) return parse_device(device);
  // No --device: the GPU when there is one, as mlx-lm runs on the GPU by default. A build without
  // CUDA or a machine without a GPU falls back to the CPU silently; only an explicit
  // --device cuda makes a missing GPU an error (load_model names the reason).
  try {
    ops::backend_for(Device::cuda(0));
    return Device::cuda(0);
  } catch (const Error&) {
    return Device::cpu();
  }
}

void add_matmul_precision_flag(ArgParser& parser, std::string* target) {
  parser.add_choice({"--matmul-precision"}, target, {"bf16", "exact"},
                    "bf16 (default): GPU prefill GEMMs with bf16 weights round their input to bf16 "
                    "once (PyTorch/MLX bf16 compute) and CPU products with quantized weights round "
                    "it to int16 per group (integer dot products: 4-bit decode ~3x faster); "
                    "exact: f32 inputs everywhere (3x the tensor-core work, the CPU's f32 "
                    "quantized path)");
}

model::LoadOptions load_options(Device device, const std::string& matmul_precision) {
  model::LoadOptions options;
  options.device = device;
  options.matmul_precision =
      matmul_precision == "exact" ? ops::MatmulPrecision::exact : ops::MatmulPrecision::bf16;
  return options;
}

void set_kv_cache_flags(const std::optional<int>& max_kv_size, const std::optional<int>& kv_bits,
                        int kv_group_size, int quantized_kv_start,
                        gen::GenerationOptions& options) {
  if (max_kv_size && *max_kv_size < 1)
    throw UsageError("argument --max-kv-size: must be positive, got " +
                     std::to_string(*max_kv_size));
  if (kv_bits && *kv_bits != 2 && *kv_bits != 3 && *kv_bits != 4 && *kv_bits != 5 &&
      *kv_bits != 6 && *kv_bits != 8)
    throw UsageError("argument --kv-bits: MLX quantizes to 2, 3, 4, 5, 6 or 8 bits, got " +
                     std::to_string(*kv_bits));
  if (kv_group_size != 32 && kv_group_size != 64 && kv_group_size != 128)
    throw UsageError("argument --kv-group-size: must be 32, 64 or 128, got " +
                     std::to_string(kv_group_size));
  if (quantized_kv_start < 0)
    throw UsageError("argument --quantized-kv-start: must be >= 0, got " +
                     std::to_string(quantized_kv_start));
  options.max_kv_size = max_kv_size.value_or(0);
  options.kv_bits = kv_bits.value_or(0);
  options.kv_group_size = kv_group_size;
  options.quantized_kv_start = quantized_kv_start;
}

std::shared_ptr<kv::KvCache> make_kv_cache(const model::Model& model,
                                           const gen::GenerationOptions& options,
                                           int64_t capacity_tokens) {
  return gen::make_prompt_cache(model, options, capacity_tokens);
}

std::string python_json_line(const nlohmann::ordered_json& object) {
  std::string out = "{";
  for (const auto& [key, value] : object.items()) {
    if (out.size() > 1) out += ", ";
    out += quant::python_json_dumps(nlohmann::ordered_json(key)) + ": " +
           quant::python_json_dumps(value);
  }
  return out + "}";
}

}  // namespace hearth::cli
