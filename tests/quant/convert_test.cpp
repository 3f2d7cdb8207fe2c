// quant::convert_model on the tiny fixture models: files, index, config and tensors as mlx-lm
// writes them, checked by the numpy re-implementation of mlx-lm's loader rules
// (mlx_loader_check.py) as well as here.
#include "quant/convert.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "io/json_file.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "ops/copy.h"
#include "ops/quantized.h"
#include "quant/awq.h"
#include "quant/mlx_format.h"
#include "quant/python_json.h"
#include "test_util.h"

namespace hearth::quant {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;
using test::TempDir;

// The Llama family's hooks, written out here (the registry lives above this layer).
ModelHooks llama_hooks(const fs::path& dir) {
  Json config = io::read_ordered_json_file(dir / "config.json");
  ModelHooks hooks;
  hooks.num_layers = config["num_hidden_layers"].get<int>();
  const bool tied = config.value("tie_word_embeddings", false);
  hooks.sanitize = [tied](io::WeightSet& w) {
    for (const auto& name : w.names())
      if (name.find("self_attn.rotary_emb.inv_freq") != std::string::npos) w.erase(name);
    if (tied) w.erase("lm_head.weight");
  };
  return hooks;
}

ConvertResult run(const fs::path& src, const fs::path& out, ConvertOptions o = {}) {
  o.source = src;
  o.output = out;
  return convert_model(o, llama_hooks(src));
}

// mlx_loader_check.py's verdict and its {module: bits} summary.
Json loader_check(const fs::path& out, const std::string& extra = "") {
  auto r = test::run_python(test::quote(test::test_script("mlx_loader_check.py")) + " " +
                            test::quote(out) + " " + extra);
  EXPECT_EQ(r.status, 0) << r.err;
  return r.status == 0 ? Json::parse(r.out) : Json();
}

std::vector<uint8_t> bytes_of(const Tensor& t) {
  Tensor c = ops::contiguous(t);
  const auto* p = static_cast<const uint8_t*>(c.raw_data());
  return std::vector<uint8_t>(p, p + c.nbytes());
}

// Nothing at `out`, and no temporary sibling left next to it.
void expect_no_output(const fs::path& out) {
  EXPECT_FALSE(fs::exists(out)) << out;
  if (!fs::exists(out.parent_path())) return;
  for (const auto& e : fs::directory_iterator(out.parent_path()))
    EXPECT_EQ(e.path().filename().string().find(".hearth-tmp"), std::string::npos) << e.path();
}

class QuantizeFixture : public ::testing::TestWithParam<std::tuple<const char*, int, int>> {};

TEST_P(QuantizeFixture, LoadsWithMlxLmRulesAndMatchesMlxQuantize) {
  if (!test::have_numpy()) GTEST_SKIP() << "needs /usr/bin/python3 with numpy";
  auto [model, bits, group_size] = GetParam();
  TempDir tmp;
  ConvertOptions o;
  o.quantize = true;
  o.bits = bits;
  o.group_size = group_size;
  ConvertResult r = run(test::fixture(model), tmp.path() / "out", o);
  Json summary = loader_check(tmp.path() / "out", "--source " + test::quote(test::fixture(model)));
  // Every 2-D weight whose input size is a multiple of the group size is quantized, at `bits`.
  io::WeightSet src = io::WeightSet::load_dir(test::fixture(model));
  size_t expected_quantized = 0;
  for (const auto& name : src.names()) {
    if (param_of(name) != "weight") continue;
    Tensor w = src.get(name);
    const bool q = w.ndim() == 2 && w.dim(1) % group_size == 0;
    expected_quantized += q;
    EXPECT_EQ(summary[module_of(name)], q ? Json(bits) : Json(nullptr)) << name;
  }
  EXPECT_EQ(r.quantized_modules, expected_quantized);
  Json config = io::read_ordered_json_file(tmp.path() / "out" / "config.json");
  Json q = Json::object();
  q["group_size"] = group_size;
  q["bits"] = bits;
  q["mode"] = "affine";
  EXPECT_EQ(config["quantization"], q);
  EXPECT_EQ(config["quantization_config"], q);
}

INSTANTIATE_TEST_SUITE_P(
    BitsAndGroups, QuantizeFixture,
    ::testing::Values(std::make_tuple("llama-gqa-llama3", 4, 64),
                      std::make_tuple("llama-gqa-llama3", 2, 32),
                      std::make_tuple("llama-gqa-llama3", 8, 128),  // only down_proj (in = 128)
                      std::make_tuple("qwen3-plain", 3, 32), std::make_tuple("qwen3-plain", 5, 64),
                      std::make_tuple("qwen2-bias-yarn-sliding", 6, 32),
                      std::make_tuple("llama-tied-bias-linear-old-rope", 4, 32),
                      std::make_tuple("qwen3-qknorm-dynamic", 8, 64)));

TEST(Convert, BothMlxQuantizers) {
  // The default reproduces MLX's Metal/CUDA kernels (mlx_lm.convert on Apple silicon); `cpu` its
  // CPU backend. The two differ on this model at 2 bits, and the checker tells them apart.
  if (!test::have_numpy()) GTEST_SKIP() << "needs /usr/bin/python3 with numpy";
  TempDir tmp;
  const fs::path src = test::fixture("llama-gqa-llama3");
  for (auto variant : {ops::MlxQuantizer::gpu, ops::MlxQuantizer::cpu}) {
    const std::string name = variant == ops::MlxQuantizer::gpu ? "gpu" : "cpu";
    ConvertOptions o;
    o.quantize = true;
    o.bits = 2;
    o.group_size = 32;
    o.quantizer = variant;
    run(src, tmp.path() / name, o);
    loader_check(tmp.path() / name, "--source " + test::quote(src) + " --variant " + name);
    auto other = test::run_python(test::quote(test::test_script("mlx_loader_check.py")) + " " +
                                  test::quote(tmp.path() / name) + " --source " + test::quote(src) +
                                  " --variant " + (name == "gpu" ? "cpu" : "gpu"));
    EXPECT_NE(other.status, 0) << name;
    EXPECT_NE(other.err.find("differ from MLX's quantize"), std::string::npos) << other.err;
  }
}

TEST(Convert, IndexAndConfigText) {
  TempDir tmp;
  ConvertOptions o;
  o.quantize = true;
  ConvertResult r = run(test::fixture("llama-gqa-llama3"), tmp.path() / "out", o);
  const fs::path out = tmp.path() / "out";
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(out)) files.insert(e.path().filename().string());
  EXPECT_EQ(files, (std::set<std::string>{"README.md", "chat_template.jinja", "config.json",
                                          "generation_config.json", "golden.json",
                                          "model.safetensors", "model.safetensors.index.json",
                                          "tokenizer.json", "tokenizer_config.json"}));
  auto file = io::SafetensorsFile::open(out / "model.safetensors");
  EXPECT_EQ(file->metadata(), (std::map<std::string, std::string>{{"format", "mlx"}}));
  // Written in mlx-lm's module order: embed_tokens, layer 0 q/k/v/o, mlp, norms, ..., lm_head.
  std::vector<std::string> order = file->names();
  EXPECT_EQ(order.front(), "model.embed_tokens.weight");
  EXPECT_EQ(order[3], "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(order.back(), "lm_head.biases");

  const std::string index_text = test::read_text(out / "model.safetensors.index.json");
  Json index = Json::parse(index_text);
  EXPECT_EQ(python_json_dumps(index), index_text);
  EXPECT_EQ(index["metadata"]["total_size"].get<size_t>(), r.total_size);
  // mlx-lm counts a quantized module's unpacked weight: the original parameter count.
  io::WeightSet src = io::WeightSet::load_dir(test::fixture("llama-gqa-llama3"));
  int64_t params = 0;
  for (const auto& n : src.names()) params += src.get(n).numel();
  EXPECT_EQ(index["metadata"]["total_parameters"].get<int64_t>(), params);
  std::vector<std::string> keys;
  for (const auto& [k, v] : index["weight_map"].items()) {
    keys.push_back(k);
    EXPECT_EQ(v, "model.safetensors");
  }
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  EXPECT_EQ(keys.size(), r.tensors);

  const std::string config_text = test::read_text(out / "config.json");
  Json config = Json::parse(config_text);
  EXPECT_EQ(python_json_dumps(config), config_text);
  std::vector<std::string> config_keys;
  for (const auto& [k, v] : config.items()) config_keys.push_back(k);
  EXPECT_TRUE(std::is_sorted(config_keys.begin(), config_keys.end()));
  // Nested objects keep their order (save_config sorts the top level only).
  Json src_config = io::read_ordered_json_file(test::fixture("llama-gqa-llama3") / "config.json");
  EXPECT_EQ(config["rope_parameters"].dump(), src_config["rope_parameters"].dump());
  EXPECT_EQ(test::read_text(out / "tokenizer.json"),
            test::read_text(test::fixture("llama-gqa-llama3") / "tokenizer.json"));
  EXPECT_EQ(test::read_text(out / "README.md"),
            "---\nlanguage: en\nlibrary_name: mlx\npipeline_tag: text-generation\ntags:\n- "
            "mlx\n---\n");
}

TEST(Convert, ShardsAtTheSizeLimit) {
  if (!test::have_numpy()) GTEST_SKIP() << "needs /usr/bin/python3 with numpy";
  TempDir tmp;
  ConvertOptions o;
  o.max_shard_bytes = 60000;  // the 115 KB bf16 model in two or more shards
  ConvertResult r = run(test::fixture("llama-gqa-llama3"), tmp.path() / "out", o);
  ASSERT_GT(r.shards, 1u);
  for (size_t i = 0; i < r.shards; ++i) {
    fs::path p =
        tmp.path() / "out" / fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, r.shards);
    ASSERT_TRUE(fs::exists(p)) << p;
    EXPECT_LE(io::SafetensorsFile::open(p)->data_bytes(), o.max_shard_bytes);
  }
  EXPECT_FALSE(fs::exists(tmp.path() / "out" / "model.safetensors"));
  loader_check(tmp.path() / "out", "--source " + test::quote(test::fixture("llama-gqa-llama3")));
}

TEST(Convert, MixedRecipesPickMlxLmLayers) {
  if (!test::have_numpy()) GTEST_SKIP() << "needs /usr/bin/python3 with numpy";
  struct Case {
    const char* recipe;
    int low, high;
  };
  for (Case c : {Case{"mixed_2_6", 2, 6}, Case{"mixed_3_4", 3, 4}, Case{"mixed_3_6", 3, 6},
                 Case{"mixed_4_6", 4, 6}}) {
    TempDir tmp;
    ConvertOptions o;
    o.quantize = true;
    o.recipe = c.recipe;
    o.group_size = 32;
    run(test::fixture("llama-gqa-llama3"), tmp.path() / "out", o);
    Json summary = loader_check(tmp.path() / "out",
                                "--source " + test::quote(test::fixture("llama-gqa-llama3")));
    // 2 layers: only layer 1 counts as "more bits" (7 * 2 // 8 = 1); lm_head always.
    for (const auto& [module, bits] : summary.items()) {
      if (bits.is_null()) continue;
      const bool high = module == "lm_head" || module == "model.layers.1.self_attn.v_proj" ||
                        module == "model.layers.1.mlp.down_proj";
      EXPECT_EQ(bits.get<int>(), high ? c.high : c.low) << c.recipe << " " << module;
    }
    // Every quantized module has its entry, in module order after the defaults.
    Json q = io::read_ordered_json_file(tmp.path() / "out" / "config.json")["quantization"];
    std::vector<std::string> keys;
    for (const auto& [k, v] : q.items()) keys.push_back(k);
    ASSERT_EQ(keys.size(), 3u + 16u);
    EXPECT_EQ(keys[3], "model.embed_tokens");
    EXPECT_EQ(keys[4], "model.layers.0.self_attn.q_proj");
    EXPECT_EQ(keys[10], "model.layers.0.mlp.up_proj");
    EXPECT_EQ(keys.back(), "lm_head");
    EXPECT_EQ(q["lm_head"].dump(),
              fmt::format(R"({{"group_size":32,"bits":{},"mode":"affine"}})", c.high));
  }
}

TEST(Convert, QuantizeThenDequantizeIsAffineDequantize) {
  TempDir tmp;
  ConvertOptions q;
  q.quantize = true;
  q.bits = 3;
  q.group_size = 32;
  run(test::fixture("qwen2-bias-yarn-sliding"), tmp.path() / "q", q);
  ConvertOptions d;
  d.dequantize = true;
  run(tmp.path() / "q", tmp.path() / "d", d);

  io::WeightSet qw = io::WeightSet::load_dir(tmp.path() / "q");
  io::WeightSet dw = io::WeightSet::load_dir(tmp.path() / "d");
  auto qconfig = QuantizationConfig::from_model_config(
      io::read_ordered_json_file(tmp.path() / "q" / "config.json"), "q");
  ASSERT_TRUE(qconfig);
  auto modules = find_quantized_modules(qw, *qconfig);
  EXPECT_EQ(modules.size(), 16u);
  for (const auto& m : modules) {
    ops::QuantizedWeight w = quantized_weight(qw, m);
    Tensor want = Tensor::empty({w.rows(), w.cols()}, w.scales.dtype());
    ops::affine_dequantize(w, want);
    Tensor got = dw.get(m.path + ".weight");
    EXPECT_EQ(got.dtype(), DType::bf16);
    EXPECT_EQ(got.shape(), want.shape());
    EXPECT_TRUE(bytes_of(got) == bytes_of(want)) << m.path;
    EXPECT_FALSE(dw.contains(m.path + ".scales"));
    EXPECT_FALSE(dw.contains(m.path + ".biases"));
  }
  // Everything else passes through; the quantization keys are gone.
  for (const auto& name : dw.names()) {
    if (!qw.contains(module_of(name) + ".scales")) {
      EXPECT_TRUE(bytes_of(dw.get(name)) == bytes_of(qw.get(name))) << name;
    }
  }
  Json config = io::read_ordered_json_file(tmp.path() / "d" / "config.json");
  EXPECT_FALSE(config.contains("quantization"));
  EXPECT_FALSE(config.contains("quantization_config"));
  if (test::have_numpy())
    loader_check(tmp.path() / "d", "--dequantized-from " + test::quote(tmp.path() / "q"));
}

TEST(Convert, QuantizingAQuantizedModelAddsEntries) {
  if (!test::have_numpy()) GTEST_SKIP() << "needs /usr/bin/python3 with numpy";
  // First pass: group size 128 quantizes only down_proj. Second: the rest at 8 bits / 32, each
  // recorded per module (quantize_model's fine-grained branch); down_proj stays as it was.
  TempDir tmp;
  ConvertOptions a;
  a.quantize = true;
  a.group_size = 128;
  run(test::fixture("llama-gqa-llama3"), tmp.path() / "a", a);
  ConvertOptions b;
  b.quantize = true;
  b.bits = 8;
  b.group_size = 32;
  run(tmp.path() / "a", tmp.path() / "b", b);
  Json summary = loader_check(tmp.path() / "b");
  EXPECT_EQ(summary["model.layers.0.mlp.down_proj"], 4);
  EXPECT_EQ(summary["model.layers.0.mlp.up_proj"], 8);
  EXPECT_EQ(summary["lm_head"], 8);
  Json q = io::read_ordered_json_file(tmp.path() / "b" / "config.json")["quantization"];
  EXPECT_EQ(q["group_size"], 128);
  EXPECT_EQ(q["bits"], 4);
  EXPECT_FALSE(q.contains("model.layers.0.mlp.down_proj"));
  EXPECT_EQ(q["model.layers.0.mlp.up_proj"].dump(),
            R"({"group_size":32,"bits":8,"mode":"affine"})");
}

TEST(Convert, DtypeFromFlagAndFromTorchDtype) {
  TempDir tmp;
  ConvertOptions o;
  o.dtype = DType::f16;
  o.quantize = true;
  o.group_size = 32;  // hidden size 96
  run(test::fixture("qwen3-plain"), tmp.path() / "f16", o);
  io::WeightSet w = io::WeightSet::load_dir(tmp.path() / "f16");
  EXPECT_EQ(w.get("model.norm.weight").dtype(), DType::f16);
  EXPECT_EQ(w.get("lm_head.scales").dtype(), DType::f16);
  EXPECT_EQ(w.get("lm_head.weight").dtype(), DType::u32);
  if (test::have_numpy())
    loader_check(tmp.path() / "f16",
                 "--source " + test::quote(test::fixture("qwen3-plain")) + " --dtype F16");

  // mlx-lm reads config.json's torch_dtype (not `dtype`) when --dtype is absent, and leaves the
  // config as it was.
  fs::copy(test::fixture("qwen3-plain"), tmp.path() / "src");
  Json config = io::read_ordered_json_file(tmp.path() / "src" / "config.json");
  config["torch_dtype"] = "float32";
  std::ofstream(tmp.path() / "src" / "config.json") << config.dump();
  run(tmp.path() / "src", tmp.path() / "f32");
  w = io::WeightSet::load_dir(tmp.path() / "f32");
  EXPECT_EQ(w.get("model.norm.weight").dtype(), DType::f32);
  EXPECT_EQ(io::read_ordered_json_file(tmp.path() / "f32" / "config.json")["torch_dtype"],
            "float32");
}

TEST(Convert, SanitizeDropsTiedHeadAndRotaryCache) {
  TempDir tmp;
  fs::copy(test::fixture("qwen3-qknorm-dynamic"), tmp.path() / "src");
  io::WeightSet w = io::WeightSet::load_dir(tmp.path() / "src");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& n : w.names()) tensors.emplace_back(n, w.get(n));
  tensors.emplace_back("lm_head.weight", w.get("model.embed_tokens.weight"));
  tensors.emplace_back("model.layers.0.self_attn.rotary_emb.inv_freq",
                       Tensor::from_vector(std::vector<float>(8, 1.f), {8}));
  io::save_safetensors(tmp.path() / "src" / "model.safetensors", tensors);
  ConvertOptions o;
  o.quantize = true;
  run(tmp.path() / "src", tmp.path() / "out", o);
  io::WeightSet out = io::WeightSet::load_dir(tmp.path() / "out");
  EXPECT_FALSE(out.contains("lm_head.weight"));
  EXPECT_FALSE(out.contains("model.layers.0.self_attn.rotary_emb.inv_freq"));
  EXPECT_TRUE(out.contains("model.embed_tokens.scales"));
}

TEST(Convert, ModelConfigAsMlxLmLoadsIt) {
  TempDir tmp;
  fs::create_directories(tmp.path() / "m");
  std::ofstream(tmp.path() / "m" / "config.json")
      << R"({"_name_or_path": "x", "vision_config": {}, "eos_token_id": 1, "model_type": "llama",)"
      << R"( "text_config": {"quantization_config": {"quant_method": "awq"}}})";
  std::ofstream(tmp.path() / "m" / "generation_config.json") << R"({"eos_token_id": [1, 7]})";
  Json c = load_model_config(tmp.path() / "m");
  EXPECT_EQ(c["eos_token_id"].dump(), "[1,7]");
  EXPECT_EQ(c["quantization_config"]["quant_method"], "awq");
  const std::string text = config_json_text(c);
  EXPECT_EQ(text.find("_name_or_path"), std::string::npos);
  EXPECT_EQ(text.find("vision_config"), std::string::npos);
  EXPECT_LT(text.find("\"eos_token_id\""), text.find("\"model_type\""));

  // A falsy eos (0, [], null) or an unreadable generation config leaves config.json's.
  std::ofstream(tmp.path() / "m" / "generation_config.json") << R"({"eos_token_id": 0})";
  EXPECT_EQ(load_model_config(tmp.path() / "m")["eos_token_id"], 1);
  std::ofstream(tmp.path() / "m" / "generation_config.json") << "{not json";
  EXPECT_EQ(load_model_config(tmp.path() / "m")["eos_token_id"], 1);

  Json q = Json::parse(R"({"b": 1, "quantization": {"group_size": 64, "bits": 4}, "a": 2})");
  EXPECT_EQ(config_json_text(q),
            "{\n    \"a\": 2,\n    \"b\": 1,\n    \"quantization\": {\n        \"group_size\": "
            "64,\n        \"bits\": 4\n    },\n    \"quantization_config\": {\n        "
            "\"group_size\": 64,\n        \"bits\": 4\n    }\n}");
}

TEST(Convert, FilesToCopy) {
  TempDir tmp;
  for (const char* f :
       {"config.json", "model.safetensors", "model.safetensors.index.json", "tokenizer.json",
        "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "merges.txt",
        "chat_template.jinja", "vocab.tiktoken", "modeling_x.py", "README.md", "pytorch_model.bin",
        "pytorch_model.bin.index.json", "consolidated.safetensors", "data.jsonl"})
    std::ofstream(tmp.path() / f) << "x";
  std::vector<std::string> names;
  for (const auto& p : files_to_copy(tmp.path())) names.push_back(p.filename().string());
  EXPECT_EQ(names, (std::vector<std::string>{"chat_template.jinja", "data.jsonl", "merges.txt",
                                             "modeling_x.py", "special_tokens_map.json",
                                             "tokenizer.json", "tokenizer.model",
                                             "tokenizer_config.json", "vocab.tiktoken"}));
}

void expect_convert_error(const ConvertOptions& o, const fs::path& src, const fs::path& out,
                          const std::string& fragment) {
  try {
    run(src, out, o);
    ADD_FAILURE() << "no error, expected: " << fragment;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Convert, BadOptionsAndInputsLeaveNothing) {
  TempDir tmp;
  const fs::path src = test::fixture("llama-gqa-llama3");
  const fs::path out = tmp.path() / "sub" / "out";
  ConvertOptions both;
  both.quantize = both.dequantize = true;
  expect_convert_error(both, src, out, "not both");
  ConvertOptions bits;
  bits.quantize = true;
  bits.bits = 7;
  expect_convert_error(bits, src, out, "7 bits");
  ConvertOptions gs;
  gs.quantize = true;
  gs.group_size = 48;
  expect_convert_error(gs, src, out, "group size 48");
  ConvertOptions mode;
  mode.quantize = true;
  mode.mode = "mxfp4";
  expect_convert_error(mode, src, out, "mxfp4");
  expect_no_output(out);
  EXPECT_FALSE(fs::exists(tmp.path() / "sub"));

  // A corrupt input: a truncated safetensors file.
  fs::copy(src, tmp.path() / "bad");
  fs::resize_file(tmp.path() / "bad" / "model.safetensors", 1000);
  ConvertOptions q;
  q.quantize = true;
  expect_convert_error(q, tmp.path() / "bad", out, "model.safetensors");
  expect_no_output(out);
  EXPECT_FALSE(fs::exists(tmp.path() / "sub"));

  // Quantized scales without a quantization entry, and the reverse.
  TempDir tmp2;
  ConvertOptions q4;
  q4.quantize = true;
  run(src, tmp2.path() / "q4", q4);
  Json config = io::read_ordered_json_file(tmp2.path() / "q4" / "config.json");
  config.erase("quantization");
  config.erase("quantization_config");
  std::ofstream(tmp2.path() / "q4" / "config.json") << config.dump();
  expect_convert_error({}, tmp2.path() / "q4", out, "has no 'quantization' entry");
  config["quantization"] =
      Json::parse(R"({"group_size": 64, "bits": 4, "model.norm": {"bits": 4}})");
  std::ofstream(tmp2.path() / "q4" / "config.json") << config.dump();
  expect_convert_error({}, tmp2.path() / "q4", out, "model.norm.scales");
  expect_no_output(out);

  // The output exists: untouched.
  fs::create_directories(out);
  std::ofstream(out / "keep") << "x";
  expect_convert_error(q, src, out, "already exists");
  EXPECT_TRUE(fs::exists(out / "keep"));
}

TEST(Convert, CancelLeavesNothing) {
  TempDir tmp;
  std::atomic<bool> cancel{false};
  ConvertProgress progress;
  progress.cancel = &cancel;
  size_t calls = 0;
  progress.on_tensor = [&](size_t done, size_t) {
    ++calls;
    if (done == 3) cancel = true;
  };
  ConvertOptions o;
  o.source = test::fixture("llama-gqa-llama3");
  o.output = tmp.path() / "out";
  o.quantize = true;
  EXPECT_THROW(convert_model(o, llama_hooks(o.source), progress), Error);
  EXPECT_EQ(calls, 3u);
  expect_no_output(tmp.path() / "out");
}

}  // namespace
}  // namespace hearth::quant

namespace hearth::quant {
namespace {

// An AutoAWQ-style checkpoint of the llama fixture's shape: every Linear as qweight / qzeros /
// scales (f16), the rest in bf16, config.json with an awq quantization_config.
fs::path make_awq_folder(const fs::path& dir) {
  const fs::path src = test::fixture("llama-gqa-llama3");
  fs::create_directories(dir);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) fs::copy_file(src / f, dir / f);
  Json config = io::read_ordered_json_file(src / "config.json");
  config["quantization_config"] = Json::parse(
      R"({"bits": 4, "group_size": 32, "quant_method": "awq", "version": "gemm", "zero_point": true})");
  std::ofstream(dir / "config.json") << config.dump(2);
  io::WeightSet w = io::WeightSet::load_dir(src);
  std::mt19937 rng(7);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& name : w.names()) {
    Tensor t = w.get(name);
    const std::string m = module_of(name);
    if (t.ndim() != 2 || m == "model.embed_tokens" || m == "lm_head") {
      tensors.emplace_back(name, t);
      continue;
    }
    const int64_t out = t.dim(0), in = t.dim(1), groups = in / 32;
    std::vector<int32_t> q(size_t(in * out / 8)), z(size_t(groups * out / 8));
    for (auto& v : q) v = int32_t(rng());
    for (auto& v : z) v = int32_t(rng());
    std::vector<F16> s(size_t(groups * out));
    for (auto& v : s) v = f32_to_f16(float(rng() % 1000 + 1) * 1e-4f);
    tensors.emplace_back(m + ".qweight", Tensor::from_vector(q, {in, out / 8}));
    tensors.emplace_back(m + ".qzeros", Tensor::from_vector(z, {groups, out / 8}));
    tensors.emplace_back(m + ".scales", Tensor::from_vector(s, {groups, out}));
  }
  io::save_safetensors(dir / "model.safetensors", tensors);
  return dir;
}

TEST(Convert, AwqCheckpointBecomesMlxAffine) {
  TempDir tmp;
  const fs::path src = make_awq_folder(tmp.path() / "awq");
  run(src, tmp.path() / "mlx");
  Json config = io::read_ordered_json_file(tmp.path() / "mlx" / "config.json");
  // mlx-lm records {"group_size", "bits"} (no mode) in both keys.
  EXPECT_EQ(config["quantization"].dump(), R"({"group_size":32,"bits":4})");
  EXPECT_EQ(config["quantization_config"].dump(), R"({"group_size":32,"bits":4})");
  io::WeightSet in = io::WeightSet::load_dir(src);
  io::WeightSet out = io::WeightSet::load_dir(tmp.path() / "mlx");
  const std::string p = "model.layers.1.self_attn.o_proj";
  ops::QuantizedWeight want =
      awq_to_mlx(in.get(p + ".qweight"), in.get(p + ".qzeros"), in.get(p + ".scales"), 32, p);
  EXPECT_TRUE(bytes_of(out.get(p + ".weight")) == bytes_of(want.packed));
  EXPECT_TRUE(bytes_of(out.get(p + ".scales")) == bytes_of(want.scales));
  EXPECT_TRUE(bytes_of(out.get(p + ".biases")) == bytes_of(want.biases));
  // Float tensors take the scales' dtype; nothing of AWQ's naming is left.
  EXPECT_EQ(out.get("model.embed_tokens.weight").dtype(), DType::f16);
  EXPECT_EQ(out.get("model.norm.weight").dtype(), DType::f16);
  for (const auto& name : out.names()) {
    EXPECT_EQ(name.find("qweight"), std::string::npos);
    EXPECT_EQ(name.find("qzeros"), std::string::npos);
  }
  if (test::have_numpy()) {
    Json summary = loader_check(tmp.path() / "mlx");
    EXPECT_EQ(summary["model.layers.0.mlp.down_proj"], 4);
    EXPECT_EQ(summary["lm_head"], nullptr);
  }

  // -d straight from the AWQ folder; -q quantizes the float modules left, entry by entry.
  ConvertOptions d;
  d.dequantize = true;
  run(src, tmp.path() / "dense", d);
  io::WeightSet dense = io::WeightSet::load_dir(tmp.path() / "dense");
  Tensor w = Tensor::empty({want.rows(), want.cols()}, DType::f16);
  ops::affine_dequantize(want, w);
  EXPECT_TRUE(bytes_of(dense.get(p + ".weight")) == bytes_of(w));
  EXPECT_FALSE(io::read_ordered_json_file(tmp.path() / "dense" / "config.json")
                   .contains("quantization_config"));
  ConvertOptions q;
  q.quantize = true;
  run(src, tmp.path() / "q", q);
  Json qq = io::read_ordered_json_file(tmp.path() / "q" / "config.json")["quantization"];
  EXPECT_EQ(qq["lm_head"].dump(), R"({"group_size":64,"bits":4,"mode":"affine"})");
  EXPECT_EQ(qq["model.embed_tokens"].dump(), R"({"group_size":64,"bits":4,"mode":"affine"})");
  EXPECT_FALSE(qq.contains(p));
}

TEST(Convert, UnsupportedForeignQuantization) {
  TempDir tmp;
  fs::copy(test::fixture("llama-gqa-llama3"), tmp.path() / "src");
  Json config = io::read_ordered_json_file(tmp.path() / "src" / "config.json");
  config["quantization_config"] = Json::parse(R"({"quant_method": "fp8"})");
  std::ofstream(tmp.path() / "src" / "config.json") << config.dump();
  expect_convert_error({}, tmp.path() / "src", tmp.path() / "out", "'fp8' is not supported");
  expect_no_output(tmp.path() / "out");
}

}  // namespace
}  // namespace hearth::quant
