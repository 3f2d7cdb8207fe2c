#include "quant/convert.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>

#include "io/atomic_file.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "ops/copy.h"
#include "ops/quantized.h"
#include "quant/mlx_format.h"
#include "quant/python_json.h"
#include "quant/recipes.h"

namespace hearth::quant {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

namespace {

// mlx-lm's MODEL_CONVERSION_DTYPES.
std::optional<DType> conversion_dtype(const Json& value) {
  if (!value.is_string()) return std::nullopt;
  const std::string name = value.get<std::string>();
  if (name == "float16") return DType::f16;
  if (name == "bfloat16") return DType::bf16;
  if (name == "float32") return DType::f32;
  return std::nullopt;
}

const char* conversion_dtype_name(DType dtype) {
  return dtype == DType::f16 ? "float16" : dtype == DType::bf16 ? "bfloat16" : "float32";
}

// Python truthiness of a JSON value (mlx-lm's `if eos_token_id := ...`).
bool truthy(const Json& v) {
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number_integer() || v.is_number_unsigned()) return v.get<int64_t>() != 0;
  if (v.is_number_float()) return v.get<double>() != 0.0;
  if (v.is_string() || v.is_array() || v.is_object()) return !v.empty();
  return true;
}

bool glob_match(const std::string& name, const std::string& pattern) {
  if (pattern.rfind("*", 0) == 0) {
    std::string suffix = pattern.substr(1);
    return name.size() >= suffix.size() &&
           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  }
  return name == pattern;
}

// fsync of a file or folder, so that what the final rename publishes is on disk.
void sync_path(const fs::path& p, bool directory) {
  int fd = ::open(p.c_str(), O_RDONLY | (directory ? O_DIRECTORY : 0));
  if (fd < 0) fail(ErrorCode::io, "cannot open {}: {}", p.string(), std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) fail(ErrorCode::io, "cannot flush {}: {}", p.string(), std::strerror(errno));
}

// The output folder is built under a hidden sibling name and renamed into place when complete.
class StagingFolder {
 public:
  explicit StagingFolder(const fs::path& target) : target_(target) {
    fs::path parent = target.parent_path();
    if (parent.empty()) parent = ".";
    // mlx-lm creates missing parents (mkdir(parents=True)); remember the first one made so that a
    // failure removes them again.
    for (fs::path p = parent; !p.empty() && !fs::exists(p); p = p.parent_path()) {
      created_parent_ = p;
      if (p == p.parent_path()) break;
    }
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec) fail(ErrorCode::io, "--mlx-path: cannot create {}: {}", parent.string(), ec.message());
    std::random_device rd;
    temp_ = parent / fmt::format(".{}.hearth-tmp-{}-{:08x}", target.filename().string(),
                                 int(::getpid()), unsigned(rd()));
    if (!fs::create_directory(temp_, ec) || ec)
      fail(ErrorCode::io, "cannot create the temporary folder {}: {}", temp_.string(),
           ec ? ec.message() : "it exists");
  }
  ~StagingFolder() {
    if (committed_) return;
    std::error_code ec;
    fs::remove_all(temp_, ec);
    if (!created_parent_.empty()) fs::remove_all(created_parent_, ec);
  }
  StagingFolder(const StagingFolder&) = delete;
  StagingFolder& operator=(const StagingFolder&) = delete;

  const fs::path& path() const { return temp_; }

  void commit() {
    sync_path(temp_, true);
    // RENAME_NOREPLACE: a folder that appeared at the target meanwhile is never replaced.
    if (::renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, target_.c_str(), RENAME_NOREPLACE) != 0)
      fail(ErrorCode::io, "cannot rename {} to {}: {}", temp_.string(), target_.string(),
           std::strerror(errno));
    committed_ = true;
    sync_path(target_.parent_path().empty() ? fs::path(".") : target_.parent_path(), true);
  }

 private:
  fs::path target_, temp_, created_parent_;
  bool committed_ = false;
};

// What happens to one module of the input.
enum class Action { keep, quantize, dequantize };

struct ModulePlan {
  std::string path;
  std::vector<std::string> params;  // parameter names of the input
  Action action = Action::keep;
  QuantSpec spec;              // quantize: the new spec; dequantize / quantized keep: the input's
  bool quantized_out = false;  // the output module is quantized
};

struct OutputTensor {
  std::string name;
  Dims shape;
  DType dtype;
  size_t module = 0;  // index into the plans
  size_t nbytes() const { return size_t(shape.numel()) * dtype_size(dtype); }
};

class Converter {
 public:
  Converter(const ConvertOptions& options, const ModelHooks& hooks, const ConvertProgress& progress)
      : options_(options), hooks_(hooks), progress_(progress) {}

  ConvertResult run();

 private:
  void info(const std::string& line) const {
    if (progress_.on_info) progress_.on_info(line);
  }
  void check_cancel() const {
    if (progress_.cancel && progress_.cancel->load())
      fail(ErrorCode::io, "conversion interrupted; nothing was written to {}",
           options_.output.string());
  }
  void load_input();
  void resolve_dtype();
  void plan_modules();
  void plan_outputs();
  // The module's output tensors by name.
  std::vector<std::pair<std::string, Tensor>> compute(const ModulePlan& plan);
  Tensor cast_if_needed(const Tensor& t) const {
    if (dtype_ && is_floating(t.dtype()) && t.dtype() != *dtype_) return ops::cast(t, *dtype_);
    return t;
  }
  DType out_float_dtype(DType in) const { return dtype_ && is_floating(in) ? *dtype_ : in; }
  void write_output(const fs::path& dir, ConvertResult& result);

  const ConvertOptions& options_;
  const ModelHooks& hooks_;
  const ConvertProgress& progress_;
  std::string origin_;  // ".../config.json"
  Json config_;
  io::WeightSet weights_;
  std::optional<QuantizationConfig> input_quant_;
  std::map<std::string, QuantizedModule> input_modules_;  // quantized modules of the input
  std::optional<DType> dtype_;
  std::optional<QuantizationConfig> output_quant_;
  std::vector<ModulePlan> plans_;
  std::vector<OutputTensor> outputs_;
  std::map<std::string, std::string> weight_map_;  // tensor -> shard file, filled by write_output
};

void Converter::load_input() {
  info("Loading");
  origin_ = (options_.source / "config.json").string();
  config_ = load_model_config(options_.source);
  if (!config_.is_object()) fail(ErrorCode::config, "{}: expected a JSON object", origin_);
  weights_ = io::WeightSet::load_dir(options_.source);
  if (hooks_.sanitize) hooks_.sanitize(weights_);

  if (auto q = load_quantization(config_, weights_, origin_)) {
    if (q->from_awq) {
      // mlx-lm records the converted checkpoint's dict under both keys.
      config_["quantization"] = q->config.to_json();
      config_["quantization_config"] = q->config.to_json();
    }
    for (auto& m : q->modules) input_modules_[m.path] = m;
    input_quant_ = std::move(q->config);
  }
}

void Converter::resolve_dtype() {
  // mlx-lm: --dtype, else config.json's torch_dtype, else text_config.dtype; only the three
  // conversion dtypes trigger a cast of every floating tensor.
  dtype_ = options_.dtype;
  if (!dtype_) {
    auto it = config_.find("torch_dtype");
    if (it != config_.end() && !it->is_null()) {
      dtype_ = conversion_dtype(*it);
    } else if (auto tc = config_.find("text_config"); tc != config_.end() && tc->is_object()) {
      if (auto d = tc->find("dtype"); d != tc->end()) dtype_ = conversion_dtype(*d);
    }
  }
  if (dtype_) info(std::string("Using dtype: ") + conversion_dtype_name(*dtype_));
}

void Converter::plan_modules() {
  std::map<std::string, std::vector<std::string>> modules;
  for (const auto& name : weights_.names()) modules[module_of(name)].push_back(param_of(name));
  std::vector<std::string> paths;
  for (const auto& [path, params] : modules) paths.push_back(path);
  std::sort(paths.begin(), paths.end(), mlx_order_less);

  QuantSpec defaults = *mode_defaults(options_.mode);
  if (options_.group_size) defaults.group_size = *options_.group_size;
  if (options_.bits) defaults.bits = *options_.bits;
  std::optional<MixedRecipe> recipe;
  if (options_.recipe)
    recipe = MixedRecipe::build(*options_.recipe, paths, hooks_.num_layers, defaults.group_size);

  // quantize_model: a model that already has a quantization dict gets an entry per newly
  // quantized module; a fresh one starts from the defaults and records only predicate dicts.
  const bool fine_grained = input_quant_.has_value();
  if (options_.quantize)
    output_quant_ = fine_grained ? *input_quant_ : QuantizationConfig(defaults);

  for (const auto& path : paths) {
    ModulePlan plan;
    plan.path = path;
    plan.params = modules[path];
    std::sort(plan.params.begin(), plan.params.end(), mlx_order_less);
    auto in_q = input_modules_.find(path);
    if (in_q != input_modules_.end()) {
      plan.spec = in_q->second.spec;
      plan.action = options_.dequantize ? Action::dequantize : Action::keep;
      plan.quantized_out = !options_.dequantize;
    } else if (options_.quantize && weights_.contains(path + ".weight")) {
      const Tensor w = weights_.get(path + ".weight");
      const bool quantizable = hooks_.quantizable ? hooks_.quantizable(path, w)
                                                  : (w.ndim() == 2 && is_floating(w.dtype()));
      if (quantizable && w.dim(-1) % defaults.group_size == 0) {
        PredicateResult r = true;
        if (recipe) {
          r = recipe->spec_for(path);
        } else if (hooks_.quant_predicate) {
          r = hooks_.quant_predicate(path);
        }
        std::optional<QuantSpec> spec;
        if (const QuantSpec* s = std::get_if<QuantSpec>(&r)) {
          spec = *s;
          output_quant_->set_override(path, *s);
        } else if (std::get<bool>(r)) {
          spec = defaults;
          if (fine_grained) output_quant_->set_override(path, defaults);
        }
        if (spec) {
          check_supported(*spec, "module '" + path + "'");
          if (w.ndim() != 2)
            fail(ErrorCode::unsupported, "module '{}': quantizing {}-D weights is not supported",
                 path, w.ndim());
          if (w.dim(-1) % spec->group_size != 0)
            fail(ErrorCode::invalid_argument,
                 "module '{}': {} input features are not a multiple "
                 "of the group size {}",
                 path, w.dim(-1), spec->group_size);
          plan.action = Action::quantize;
          plan.spec = *spec;
          plan.quantized_out = true;
        }
      }
    }
    plans_.push_back(std::move(plan));
  }
}

void Converter::plan_outputs() {
  for (size_t i = 0; i < plans_.size(); ++i) {
    const ModulePlan& plan = plans_[i];
    auto full = [&](const std::string& param) {
      return plan.path.empty() ? param : plan.path + "." + param;
    };
    if (plan.action == Action::quantize) {
      const Tensor w = weights_.get(full("weight"));
      const DType scale_dtype = out_float_dtype(w.dtype());
      const int64_t out = w.dim(0), in = w.dim(1);
      outputs_.push_back({full("weight"), Dims{out, in * plan.spec.bits / 32}, DType::u32, i});
      outputs_.push_back({full("scales"), Dims{out, in / plan.spec.group_size}, scale_dtype, i});
      outputs_.push_back({full("biases"), Dims{out, in / plan.spec.group_size}, scale_dtype, i});
    } else if (plan.action == Action::dequantize) {
      const QuantizedModule& m = input_modules_.at(plan.path);
      const DType dtype = out_float_dtype(weights_.get(full("scales")).dtype());
      Dims shape;
      const Tensor w = weights_.get(full("weight"));
      for (int d = 0; d + 1 < w.ndim(); ++d) shape.push_back(w.dim(d));
      shape.push_back(m.in_features);
      outputs_.push_back({full("weight"), shape, dtype, i});
    }
    for (const auto& param : plan.params) {
      if (plan.action != Action::keep &&
          (param == "weight" || param == "scales" || param == "biases"))
        continue;
      const Tensor t = weights_.get(full(param));
      outputs_.push_back({full(param), t.shape(), out_float_dtype(t.dtype()), i});
    }
  }
  std::stable_sort(outputs_.begin(), outputs_.end(),
                   [](const auto& a, const auto& b) { return mlx_order_less(a.name, b.name); });
}

std::vector<std::pair<std::string, Tensor>> Converter::compute(const ModulePlan& plan) {
  auto full = [&](const std::string& param) {
    return plan.path.empty() ? param : plan.path + "." + param;
  };
  std::vector<std::pair<std::string, Tensor>> out;
  if (plan.action == Action::quantize) {
    const Tensor w = cast_if_needed(weights_.get(full("weight")));
    ops::QuantizedWeight q = ops::affine_quantize(w, plan.spec.bits, plan.spec.group_size,
                                                  w.dtype(), options_.quantizer);
    out = {{full("weight"), q.packed}, {full("scales"), q.scales}, {full("biases"), q.biases}};
  } else if (plan.action == Action::dequantize) {
    ops::QuantizedWeight q = quantized_weight(weights_, input_modules_.at(plan.path));
    // mlx-lm casts (--dtype) before it dequantizes: the dense weight takes the scales' dtype.
    q.scales = cast_if_needed(q.scales);
    q.biases = cast_if_needed(q.biases);
    Tensor dense = Tensor::empty({q.rows(), q.cols()}, q.scales.dtype());
    ops::affine_dequantize(q, dense);
    out = {{full("weight"), dense}};
  }
  for (const auto& param : plan.params) {
    if (plan.action != Action::keep &&
        (param == "weight" || param == "scales" || param == "biases"))
      continue;
    out.emplace_back(full(param), cast_if_needed(weights_.get(full(param))));
  }
  return out;
}

void Converter::write_output(const fs::path& dir, ConvertResult& result) {
  // make_shards: a new shard when the next tensor would take the current one past the limit.
  std::vector<std::vector<size_t>> shards(1);
  size_t shard_bytes = 0;
  for (size_t i = 0; i < outputs_.size(); ++i) {
    const size_t bytes = outputs_[i].nbytes();
    // mlx-lm would start with an empty shard when the first tensor alone exceeds the limit.
    if (shard_bytes + bytes > options_.max_shard_bytes && !shards.back().empty()) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(i);
    shard_bytes += bytes;
  }
  const size_t count = shards.size();
  auto shard_name = [count](size_t i) {
    return count > 1 ? fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, count)
                     : std::string("model.safetensors");
  };

  // Each module's tensors are computed once; those that fall into a later shard wait here.
  std::map<std::string, Tensor> ready;
  std::vector<bool> computed(plans_.size(), false);
  size_t done = 0;
  for (size_t s = 0; s < count; ++s) {
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (size_t idx : shards[s]) {
      check_cancel();
      const OutputTensor& o = outputs_[idx];
      if (!computed[o.module]) {
        for (auto& [name, value] : compute(plans_[o.module])) ready[name] = std::move(value);
        computed[o.module] = true;
      }
      auto node = ready.extract(o.name);
      HEARTH_CHECK(!node.empty(), "output tensor {} was not computed", o.name);
      HEARTH_CHECK(node.mapped().shape() == o.shape && node.mapped().dtype() == o.dtype,
                   "{}: planned {} {}, computed {}", o.name, dtype_name(o.dtype), o.shape.str(),
                   node.mapped().describe());
      tensors.emplace_back(o.name, std::move(node.mapped()));
      weight_map_[o.name] = shard_name(s);
      ++done;
      if (progress_.on_tensor) progress_.on_tensor(done, outputs_.size());
    }
    io::save_safetensors(dir / shard_name(s), tensors, {{"format", "mlx"}});
  }
  result.shards = count;
}

ConvertResult Converter::run() {
  load_input();
  resolve_dtype();
  if (options_.dequantize) info("Dequantizing");
  if (options_.quantize) info("Quantizing");
  plan_modules();
  plan_outputs();

  ConvertResult result;
  result.output = options_.output;
  result.tensors = outputs_.size();
  for (const auto& o : outputs_) result.total_size += o.nbytes();
  // get_total_parameters: a quantized module counts its unpacked weight (and bias), others every
  // parameter.
  for (size_t i = 0; i < plans_.size(); ++i) {
    const ModulePlan& plan = plans_[i];
    for (const auto& o : outputs_) {
      if (o.module != i) continue;
      const std::string param = param_of(o.name);
      if (!plan.quantized_out)
        result.total_parameters += o.shape.numel();
      else if (param == "weight")
        result.total_parameters += o.shape.numel() * 32 / plan.spec.bits;
      else if (param == "bias")
        result.total_parameters += o.shape.numel();
    }
    if (plan.quantized_out) ++result.quantized_modules;
  }

  if (options_.quantize) {
    config_["quantization"] = output_quant_->to_json();
    config_["quantization_config"] = output_quant_->to_json();
    if (result.total_parameters > 0)
      info(fmt::format("Quantized model with {:.3f} bits per weight.",
                       double(result.total_size) * 8.0 / double(result.total_parameters)));
  }
  if (options_.dequantize) {
    config_.erase("quantization");
    config_.erase("quantization_config");
  }

  StagingFolder staging(options_.output);
  write_output(staging.path(), result);

  Json index = Json::object();
  index["metadata"] = Json::object();
  index["metadata"]["total_size"] = result.total_size;
  index["metadata"]["total_parameters"] = result.total_parameters;
  Json weight_map = Json::object();
  for (const auto& [name, shard] : weight_map_) weight_map[name] = shard;  // sorted by name
  index["weight_map"] = std::move(weight_map);
  io::write_file_atomic(staging.path() / "model.safetensors.index.json", python_json_dumps(index));
  io::write_file_atomic(staging.path() / "config.json", config_json_text(config_));

  for (const auto& file : files_to_copy(options_.source)) {
    check_cancel();
    std::error_code ec;
    fs::copy_file(file, staging.path() / file.filename(), ec);
    if (ec) fail(ErrorCode::io, "cannot copy {}: {}", file.string(), ec.message());
    sync_path(staging.path() / file.filename(), false);
  }
  // mlx-lm's create_model_card: the card data huggingface_hub writes for an MLX model.
  std::string card = "---\n";
  if (!options_.hf_repo.empty()) card += "base_model: " + options_.hf_repo + "\n";
  if (options_.hf_repo.empty()) card += "language: en\n";
  card += "library_name: mlx\npipeline_tag: text-generation\ntags:\n- mlx\n---\n";
  io::write_file_atomic(staging.path() / "README.md", card);

  check_cancel();
  staging.commit();
  return result;
}

}  // namespace

void validate_convert_options(const ConvertOptions& o) {
  if (fs::exists(fs::symlink_status(o.output)))
    fail(ErrorCode::invalid_argument,
         "--mlx-path: cannot save to the path {} as it already "
         "exists; delete the file/folder or choose a new path",
         o.output.string());
  if (o.quantize && o.dequantize)
    fail(ErrorCode::invalid_argument, "choose either --quantize or --dequantize, not both");
  auto defaults = mode_defaults(o.mode);
  if (!defaults) fail(ErrorCode::invalid_argument, "--q-mode: unknown mode '{}'", o.mode);
  if (o.recipe && o.mode != "affine")
    fail(ErrorCode::invalid_argument,
         "--quant-predicate: the mixed recipes only support 'affine' "
         "quantization");
  if (o.quantize) {
    QuantSpec spec = *defaults;
    if (o.group_size) spec.group_size = *o.group_size;
    if (o.bits) spec.bits = *o.bits;
    if (spec.mode != "affine")
      fail(ErrorCode::unsupported, "--q-mode {}: only affine quantization is supported", o.mode);
    const std::string what =
        fmt::format("--q-bits {} --q-group-size {}", spec.bits, spec.group_size);
    check_supported(spec, what);
  }
}

ConvertResult convert_model(const ConvertOptions& options, const ModelHooks& hooks,
                            const ConvertProgress& progress) {
  ConvertOptions o = options;
  // "out/" names the folder "out".
  while (!o.output.empty() && o.output.filename().empty() && o.output != o.output.root_path())
    o.output = o.output.parent_path();
  if (o.output.empty()) fail(ErrorCode::invalid_argument, "--mlx-path is empty");
  validate_convert_options(o);
  return Converter(o, hooks, progress).run();
}

Json load_model_config(const fs::path& dir) {
  Json config = io::read_ordered_json_file(dir / "config.json");
  if (!config.is_object())
    fail(ErrorCode::config, "{}: expected a JSON object", (dir / "config.json").string());
  const fs::path gen_path = dir / "generation_config.json";
  if (fs::exists(gen_path)) {
    Json gen;
    try {
      gen = io::read_ordered_json_file(gen_path);
    } catch (const Error&) {
      // mlx-lm ignores an unreadable generation_config.json.
    }
    if (gen.is_object()) {
      auto it = gen.find("eos_token_id");
      if (it != gen.end() && truthy(*it)) config["eos_token_id"] = *it;
    }
  }
  if (!config.contains("quantization_config")) {
    auto tc = config.find("text_config");
    if (tc != config.end() && tc->is_object() && tc->contains("quantization_config"))
      config["quantization_config"] = (*tc)["quantization_config"];
  }
  return config;
}

std::string config_json_text(Json config) {
  config.erase("_name_or_path");
  config.erase("vision_config");
  if (config.contains("quantization")) config["quantization_config"] = config["quantization"];
  std::vector<std::string> keys;
  for (const auto& [key, value] : config.items()) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  Json sorted = Json::object();
  for (const auto& key : keys) sorted[key] = config[key];
  return python_json_dumps(sorted);
}

std::vector<fs::path> files_to_copy(const fs::path& dir) {
  // mlx-lm's DEFAULT_ALLOW_PATTERNS (what it downloads for a model), less what convert rewrites.
  static const char* kPatterns[] = {"*.json",         "*.py",  "tokenizer.model", "*.tiktoken",
                                    "tiktoken.model", "*.txt", "*.jsonl",         "*.jinja"};
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;  // follows symlinks (HF cache snapshots)
    const std::string name = entry.path().filename().string();
    if (name == "config.json" || glob_match(name, "*.index.json")) continue;
    if (std::any_of(std::begin(kPatterns), std::end(kPatterns),
                    [&](const char* p) { return glob_match(name, p); }))
      files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace hearth::quant
