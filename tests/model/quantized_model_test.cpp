// MLX-format quantized models: a fixture model quantized in MLX's layout (u32 codes + scales +
// biases, config.json `quantization`) loads, and its logits equal those of the same model with
// the dequantized weights stored densely (same math, f32 accumulation in a different order). The
// quantization error against the original bf16 model is printed per bit width.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "io/json_file.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "model/model.h"
#include "ops/backend.h"
#include "ops/copy.h"
#include "ops/quantized.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;

fs::path fixture(const std::string& name) {
  return fs::path(HEARTH_TEST_DATA_DIR) / "models" / name;
}

struct Folders {
  fs::path quantized, dequantized;
  int quantized_layers = 0;
  ~Folders() {
    fs::remove_all(quantized);
    fs::remove_all(dequantized);
  }
};

// Quantizes every 2-D weight whose input size is a multiple of the group size (MLX's rule), and
// writes both the MLX-format folder and a dense folder holding the dequantized weights.
std::unique_ptr<Folders> make_folders_from(const fs::path& source, const std::string& name,
                                           int bits, int group_size) {
  auto f = std::make_unique<Folders>();
  std::string tag = name + "-" + std::to_string(bits) + "-" + std::to_string(group_size) + "-" +
                    std::to_string(::getpid());
  f->quantized = fs::temp_directory_path() / ("hearth-q-" + tag);
  f->dequantized = fs::temp_directory_path() / ("hearth-dq-" + tag);
  fs::create_directories(f->quantized);
  fs::create_directories(f->dequantized);
  io::WeightSet ws = io::WeightSet::load_dir(source, io::WeightResidency::mapped);
  std::vector<std::pair<std::string, Tensor>> q_tensors, dq_tensors;
  for (const std::string& tensor_name : ws.names()) {
    Tensor t = ws.get(tensor_name);
    const bool quantize = t.ndim() == 2 && t.dim(1) % group_size == 0 && tensor_name.size() > 7 &&
                          tensor_name.compare(tensor_name.size() - 7, 7, ".weight") == 0;
    if (!quantize) {
      q_tensors.emplace_back(tensor_name, t);
      dq_tensors.emplace_back(tensor_name, t);
      continue;
    }
    ++f->quantized_layers;
    ops::QuantizedWeight q = ops::affine_quantize(t, bits, group_size, DType::bf16);
    std::string prefix = tensor_name.substr(0, tensor_name.size() - 7);
    q_tensors.emplace_back(tensor_name, q.packed);
    q_tensors.emplace_back(prefix + ".scales", q.scales);
    q_tensors.emplace_back(prefix + ".biases", q.biases);
    Tensor dense = Tensor::empty(t.shape(), DType::f32);
    ops::affine_dequantize(q, dense);
    dq_tensors.emplace_back(tensor_name, dense);
  }
  io::save_safetensors(f->quantized / "model.safetensors", q_tensors, {{"format", "mlx"}});
  io::save_safetensors(f->dequantized / "model.safetensors", dq_tensors, {{"format", "pt"}});
  nlohmann::json cfg = io::read_json_file(source / "config.json");
  std::ofstream(f->dequantized / "config.json") << cfg.dump(2);
  cfg["quantization"] = {{"group_size", group_size}, {"bits", bits}};
  cfg["quantization_config"] = cfg["quantization"];
  std::ofstream(f->quantized / "config.json") << cfg.dump(2);
  return f;
}

std::unique_ptr<Folders> make_folders(const std::string& name, int bits, int group_size) {
  return make_folders_from(fixture(name), name, bits, group_size);
}

std::vector<float> all_logits(model::Model& model, const std::vector<int32_t>& ids) {
  auto pool = std::make_shared<kv::BlockPool>(model.kv_layout(16), 64);
  kv::KvCache cache(pool);
  model::SequenceInput in{.tokens = ids, .cache = &cache, .all_logits = true};
  return ops::to_device(model.forward(std::span<const model::SequenceInput>(&in, 1)), Device::cpu())
      .to_vector<float>();
}

double max_relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, double(std::fabs(a[i] - b[i])));
    ref = std::max(ref, double(std::fabs(b[i])));
  }
  return diff / ref;
}

struct Case {
  std::string model;
  int group_size;
};

class QuantizedModel : public testing::TestWithParam<Case> {};

TEST_P(QuantizedModel, LogitsEqualTheDequantizedModel) {
  const Case c = GetParam();
  nlohmann::json golden = io::read_json_file(fixture(c.model) / "golden.json");
  std::vector<int32_t> ids = golden["prompt_ids"].get<std::vector<int32_t>>();
  auto original = model::load_model(fixture(c.model));
  std::vector<float> reference = all_logits(*original, ids);
  for (int bits : ops::kQuantBits) {
    SCOPED_TRACE(fmt::format("{} bits, group size {}", bits, c.group_size));
    auto folders = make_folders(c.model, bits, c.group_size);
    ASSERT_GT(folders->quantized_layers, 0);
    auto quantized = model::load_model(folders->quantized);
    auto dequantized = model::load_model(folders->dequantized);
    // Quantized weights are read in place (smaller than the dense ones).
    EXPECT_LT(quantized->weight_bytes_per_token(), dequantized->weight_bytes_per_token());
    std::vector<float> q = all_logits(*quantized, ids), dq = all_logits(*dequantized, ids);
    EXPECT_LE(max_relative_difference(q, dq), 1e-5);
    std::printf(
        "[quantization error] %s %d-bit group %d: max |logit - bf16 logit| / max |bf16 "
        "logit| = %.4f\n",
        c.model.c_str(), bits, c.group_size, max_relative_difference(q, reference));
  }
}

// The quantized model on the GPU (fused-dequant GEMV for the last-token rows, dequantized panels
// + GEMM for the prompt, quantized embedding gather) against the same folder on the CPU.
TEST_P(QuantizedModel, CudaLogitsEqualCpu) {
  try {
    ops::backend_for(Device::cuda(0));
  } catch (const Error& e) {
    GTEST_SKIP() << "no CUDA backend/GPU: " << e.what();
  }
  const Case c = GetParam();
  nlohmann::json golden = io::read_json_file(fixture(c.model) / "golden.json");
  std::vector<int32_t> ids = golden["prompt_ids"].get<std::vector<int32_t>>();
  for (int bits : ops::kQuantBits) {
    SCOPED_TRACE(fmt::format("{} bits, group size {}", bits, c.group_size));
    auto folders = make_folders(c.model, bits, c.group_size);
    auto on_cpu = model::load_model(folders->quantized);
    model::LoadOptions gpu;
    gpu.device = Device::cuda(0);
    auto on_gpu = model::load_model(folders->quantized, gpu);
    EXPECT_LE(max_relative_difference(all_logits(*on_gpu, ids), all_logits(*on_cpu, ids)), 1e-5);
    // Decode rows (one token after the prompt) take the GEMV path on both devices.
    std::vector<int32_t> one(ids.begin(), ids.begin() + 1);
    EXPECT_LE(max_relative_difference(all_logits(*on_gpu, one), all_logits(*on_cpu, one)), 1e-5);
  }
}

// The trained default model quantized at every width, scored on the four 256-token validation
// windows of its golden file: mean next-token NLL against the dense bf16 model. A report per
// width, and two properties that do not depend on hearth's own figures: 8-bit affine
// quantization is close to lossless (under 0.05 nats), and fewer bits never score better than
// more bits by more than noise (the trend of the fixture table in
// docs/perf/quantization_error.md).
double mean_nll(model::Model& model, const nlohmann::json& items) {
  double nll = 0;
  int64_t count = 0;
  for (const auto& item : items) {
    std::vector<int32_t> ids = item["ids"].get<std::vector<int32_t>>();
    std::vector<float> logits = all_logits(model, ids);
    const int64_t vocab = model.config().vocab_size;
    for (size_t t = 0; t + 1 < ids.size(); ++t) {
      std::vector<float> row(logits.begin() + int64_t(t) * vocab,
                             logits.begin() + int64_t(t + 1) * vocab);
      double mx = *std::max_element(row.begin(), row.end()), sum = 0;
      for (float v : row) sum += std::exp(double(v) - mx);
      nll += mx + std::log(sum) - double(row[size_t(ids[t + 1])]);
      ++count;
    }
  }
  return nll / double(count);
}

TEST(QuantizedDefaultModel, NllPerWidth) {
  const fs::path dir = fs::path(HEARTH_SOURCE_DIR) / "models" / "default";
  const nlohmann::json items = io::read_json_file(
      fs::path(HEARTH_TEST_DATA_DIR) / "default_model_golden.json")["perplexity"]["items"];
  auto dense = model::load_model(dir);
  const double base = mean_nll(*dense, items);
  std::map<int, double> delta;
  for (int bits : ops::kQuantBits) {
    auto folders = make_folders_from(dir, "default", bits, 64);
    auto q = model::load_model(folders->quantized);
    delta[bits] = mean_nll(*q, items) - base;
    std::printf(
        "[quantized default model] %d-bit group 64: mean NLL %.4f (bf16 %.4f, %+.4f), "
        "perplexity %.2f\n",
        bits, base + delta[bits], base, delta[bits], std::exp(base + delta[bits]));
  }
  EXPECT_LT(std::fabs(delta[8]), 0.05);
  for (size_t i = 1; i < std::size(ops::kQuantBits); ++i) {
    const int fewer = ops::kQuantBits[i - 1], more = ops::kQuantBits[i];
    EXPECT_GT(delta[fewer], delta[more] - 0.01) << fewer << " vs " << more << " bits";
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, QuantizedModel,
                         testing::Values(Case{"llama-gqa-llama3", 64}, Case{"qwen3-plain", 32},
                                         Case{"qwen2-bias-yarn-sliding", 32}),
                         [](const testing::TestParamInfo<Case>& info) {
                           std::string n =
                               info.param.model + "_g" + std::to_string(info.param.group_size);
                           for (char& ch : n)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

TEST(QuantizedModelErrors, InconsistentQuantizedShapesNameTheTensor) {
  auto folders = make_folders("qwen3-plain", 4, 32);
  // Drop one .scales: the packed u32 weight alone cannot be a dense layer.
  io::WeightSet ws = io::WeightSet::load_dir(folders->quantized, io::WeightResidency::copied);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& n : ws.names())
    if (n != "model.layers.0.mlp.up_proj.scales") tensors.emplace_back(n, ws.get(n));
  io::save_safetensors(folders->quantized / "model.safetensors", tensors);
  try {
    model::load_model(folders->quantized);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.up_proj"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace hearth
