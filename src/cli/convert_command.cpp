// `hearth convert`: mlx_lm.convert's flags; writes an MLX-format model folder (quant/convert.h).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "cli/args.h"
#include "cli/commands.h"
#include "io/json_file.h"
#include "io/model_path.h"
#include "model/registry.h"
#include "quant/convert.h"
#include "quant/recipes.h"

namespace hearth::cli {
namespace {

namespace fs = std::filesystem;

// Set by SIGINT/SIGTERM so that an interrupted conversion removes its temporary folder.
std::atomic<bool> g_interrupted{false};

extern "C" void on_interrupt(int) {
  g_interrupted.store(true);
}

// The architecture's sanitize and layer count, from the registry (mlx-lm: the model class).
quant::ModelHooks model_hooks(const fs::path& dir) {
  const fs::path config_path = dir / "config.json";
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
  const model::Architecture* arch = model::find_architecture(arch_name);
  if (!arch) {
    std::string supported;
    for (const auto& n : model::supported_architectures())
      supported += (supported.empty() ? "" : ", ") + n;
    fail(ErrorCode::unsupported, "{}: architecture '{}' is not supported (supported: {})",
         config_path.string(), arch_name, supported);
  }
  model::DecoderConfig decoder = arch->parse_config(config, arch_name);
  quant::ModelHooks hooks;
  hooks.num_layers = int(decoder.num_layers);
  hooks.sanitize = [arch, decoder](io::WeightSet& weights) { arch->sanitize(weights, decoder); };
  return hooks;
}

// "12/345 tensors" on one line of a terminal; every tenth on other stderr streams.
class ProgressLine {
 public:
  ProgressLine() : tty_(::isatty(STDERR_FILENO)) {}
  void update(size_t done, size_t total) {
    auto now = std::chrono::steady_clock::now();
    const bool last = done == total;
    if (tty_) {
      if (!last && now - shown_ < std::chrono::milliseconds(100)) return;
      std::fprintf(stderr, "\r[convert] %zu/%zu tensors%s", done, total, last ? "\n" : "");
    } else {
      size_t step = total * (next_decile_ + 1) / 10;
      if (done < step && !last) return;
      while (next_decile_ < 10 && total * (next_decile_ + 1) / 10 <= done) ++next_decile_;
      std::fprintf(stderr, "[convert] %zu/%zu tensors\n", done, total);
    }
    std::fflush(stderr);
    shown_ = now;
  }

 private:
  bool tty_;
  int next_decile_ = 0;
  std::chrono::steady_clock::time_point shown_{};
};

}  // namespace

int run_convert(const std::vector<std::string>& argv) {
  std::optional<std::string> hf_path, upload_repo;
  std::string mlx_path = "mlx_model", q_mode = "affine", recipe, dtype;
  std::optional<int> q_group_size, q_bits;
  bool quantize = false, dequantize = false, trust_remote_code = false;
  std::vector<std::string> recipes(std::begin(quant::kQuantRecipes),
                                   std::end(quant::kQuantRecipes));

  ArgParser p("hearth convert", "Convert Hugging Face model to MLX format (mlx_lm.convert).");
  p.add_optional_string({"--hf-path", "--model"}, &hf_path,
                        "Path to the model: a local folder or a Hugging Face repo id in the local "
                        "cache.");
  p.add_string({"--mlx-path"}, &mlx_path, "Path to save the MLX model (default: mlx_model).");
  p.add_flag({"-q", "--quantize"}, &quantize, "Generate a quantized model.");
  p.add_optional_int({"--q-group-size"}, &q_group_size,
                     "Group size for quantization (32, 64 or 128; default 64).");
  p.add_optional_int({"--q-bits"}, &q_bits,
                     "Bits per weight for quantization (2, 3, 4, 5, 6 or 8; default 4).");
  p.add_choice(
      {"--q-mode"}, &q_mode, {"affine", "mxfp4", "nvfp4", "mxfp8"},
      "The quantization mode: affine (default; mxfp4, nvfp4 and mxfp8 are not supported yet).");
  p.add_choice({"--quant-predicate"}, &recipe, recipes,
               "Mixed-bit quantization recipe: mixed_2_6, mixed_3_4, mixed_3_6 or mixed_4_6.");
  p.add_choice({"--dtype"}, &dtype, {"float16", "bfloat16", "float32"},
               "Type to save the non-quantized parameters: float16, bfloat16 or float32. "
               "Defaults to config.json's `torch_dtype` or the current model weights dtype.");
  p.add_optional_string({"--upload-repo"}, &upload_repo,
                        "The Hugging Face repo to upload the model to (not supported: hearth "
                        "does not upload).");
  p.add_flag({"-d", "--dequantize"}, &dequantize, "Dequantize a quantized model.");
  p.add_flag({"--trust-remote-code"}, &trust_remote_code,
             "Accepted for compatibility; hearth never runs code from a model folder.");
  if (!p.parse(argv)) return 0;
  (void)trust_remote_code;

  if (!hf_path) throw UsageError("the following arguments are required: --hf-path/--model");
  if (upload_repo)
    fail(ErrorCode::unsupported,
         "--upload-repo: hearth does not upload to the Hugging Face Hub; "
         "upload the folder with `huggingface-cli upload`");

  quant::ConvertOptions options;
  options.output = mlx_path;
  options.quantize = quantize;
  options.dequantize = dequantize;
  options.group_size = q_group_size;
  options.bits = q_bits;
  options.mode = q_mode;
  if (!recipe.empty()) options.recipe = recipe;
  if (!dtype.empty()) options.dtype = parse_dtype(dtype);
  // MLX's Metal/CUDA quantize kernels (what mlx_lm.convert writes on Apple silicon) by default;
  // HEARTH_MLX_QUANTIZER=cpu reproduces its CPU backend instead (docs/ops.md: two edge cases).
  if (const char* q = std::getenv("HEARTH_MLX_QUANTIZER")) {
    const std::string v = q;
    if (v == "cpu")
      options.quantizer = ops::MlxQuantizer::cpu;
    else if (v != "gpu" && !v.empty())
      fail(ErrorCode::invalid_argument, "HEARTH_MLX_QUANTIZER={}: expected 'gpu' or 'cpu'", v);
  }
  // Cheap checks first (existing --mlx-path, -q with -d, bits), as mlx-lm does before loading.
  quant::validate_convert_options(options);
  if (!quantize && (q_bits || q_group_size || !recipe.empty()))
    std::fprintf(stderr,
                 "[WARN] --q-bits, --q-group-size and --quant-predicate only apply with "
                 "-q/--quantize\n");

  options.source = io::resolve_model_path(*hf_path);
  if (!fs::exists(*hf_path)) options.hf_repo = *hf_path;
  if (!fs::is_directory(options.source))
    fail(ErrorCode::not_found, "--hf-path: {} is not a model folder", options.source.string());
  quant::ModelHooks hooks = model_hooks(options.source);

  ProgressLine line;
  quant::ConvertProgress progress;
  progress.on_info = [](const std::string& text) { std::printf("[INFO] %s\n", text.c_str()); };
  progress.on_tensor = [&line](size_t done, size_t total) {
    std::fflush(stdout);
    line.update(done, total);
  };
  progress.cancel = &g_interrupted;
  auto old_int = std::signal(SIGINT, on_interrupt);
  auto old_term = std::signal(SIGTERM, on_interrupt);
  struct Restore {
    decltype(old_int) i, t;
    ~Restore() {
      std::signal(SIGINT, i);
      std::signal(SIGTERM, t);
    }
  } restore{old_int, old_term};

  quant::ConvertResult result = quant::convert_model(options, hooks, progress);
  std::printf("[INFO] Saved %zu tensors (%zu bytes, %zu file%s) to %s\n", result.tensors,
              result.total_size, result.shards, result.shards == 1 ? "" : "s",
              result.output.string().c_str());
  return 0;
}

}  // namespace hearth::cli
