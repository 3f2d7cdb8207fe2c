// `hearth convert` as a user drives it: flags as mlx_lm.convert takes them, output folders that
// mlx-lm's loader rules accept, exit codes and messages, and nothing left behind on errors.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/json_file.h"
#include "io/weights.h"
#include "ops/copy.h"
#include "ops/quantized.h"
#include "quant/mlx_format.h"

namespace {

namespace fs = std::filesystem;

struct RunResult {
  int status = -1;
  std::string out, err;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class Scratch {
 public:
  Scratch() {
    static int counter = 0;
    dir_ = fs::temp_directory_path() /
           ("hearth-convert-e2e-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::create_directories(dir_);
  }
  ~Scratch() { fs::remove_all(dir_); }
  const fs::path& dir() const { return dir_; }
  // Entries of the folder other than `keep`, to check that an error left nothing behind.
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename());
    return out;
  }

 private:
  fs::path dir_;
};

// Runs `hearth ARGS` in `cwd`.
RunResult run_in(const fs::path& cwd, const std::string& args) {
  static int counter = 0;
  fs::path io = fs::temp_directory_path() / ("hearth-convert-io-" + std::to_string(::getpid()) +
                                             "-" + std::to_string(counter++));
  fs::create_directories(io);
  std::string cmd = "cd '" + cwd.string() + "' && " + HEARTH_BINARY + " " + args + " >" +
                    (io / "out").string() + " 2>" + (io / "err").string() + " </dev/null";
  int raw = std::system(cmd.c_str());
  RunResult r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = read_file(io / "out");
  r.err = read_file(io / "err");
  fs::remove_all(io);
  return r;
}

fs::path fixture(const std::string& name) {
  return fs::path(HEARTH_TEST_DATA_DIR) / "models" / name;
}

std::string q(const fs::path& p) {
  return "'" + p.string() + "'";
}

bool have_numpy() {
  static const bool ok = std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0;
  return ok;
}

// tests/quant/mlx_loader_check.py: mlx-lm's loader rules in numpy. Returns its summary.
nlohmann::json loader_check(const fs::path& out, const std::string& extra) {
  Scratch s;
  std::string cmd = "/usr/bin/python3 '" + std::string(HEARTH_SOURCE_DIR) +
                    "/tests/quant/mlx_loader_check.py' " + q(out) + " " + extra + " >" +
                    (s.dir() / "out").string() + " 2>" + (s.dir() / "err").string();
  int raw = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(raw), 0) << read_file(s.dir() / "err");
  std::string text = read_file(s.dir() / "out");
  return text.empty() ? nlohmann::json() : nlohmann::json::parse(text);
}

std::vector<uint8_t> bytes_of(const hearth::Tensor& t) {
  hearth::Tensor c = hearth::ops::contiguous(t);
  const auto* p = static_cast<const uint8_t*>(c.raw_data());
  return std::vector<uint8_t>(p, p + c.nbytes());
}

TEST(ConvertCli, QuantizeThenDequantizeRoundTrip) {
  Scratch s;
  const fs::path src = fixture("llama-gqa-llama3");
  RunResult r = run_in(
      s.dir(), "convert --hf-path " + q(src) + " --mlx-path q4 -q --q-bits 4 --q-group-size 32");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("[INFO] Loading\n[INFO] Quantizing\n[INFO] Quantized model with ", 0), 0u)
      << r.out;
  EXPECT_NE(r.err.find("[convert] 53/53 tensors"), std::string::npos) << r.err;
  if (have_numpy()) loader_check(s.dir() / "q4", "--source " + q(src));

  r = run_in(s.dir(), "convert --model q4 --mlx-path dense -d");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("[INFO] Dequantizing"), std::string::npos) << r.out;
  // `convert -d` of `convert -q` = affine_dequantize of the quantized tensors.
  auto qw = hearth::io::WeightSet::load_dir(s.dir() / "q4");
  auto dw = hearth::io::WeightSet::load_dir(s.dir() / "dense");
  auto config = hearth::quant::QuantizationConfig::from_model_config(
      hearth::io::read_ordered_json_file(s.dir() / "q4" / "config.json"), "q4");
  ASSERT_TRUE(config);
  auto modules = hearth::quant::find_quantized_modules(qw, *config);
  ASSERT_EQ(modules.size(), 16u);
  for (const auto& m : modules) {
    auto w = hearth::quant::quantized_weight(qw, m);
    hearth::Tensor want = hearth::Tensor::empty({w.rows(), w.cols()}, w.scales.dtype());
    hearth::ops::affine_dequantize(w, want);
    EXPECT_TRUE(bytes_of(dw.get(m.path + ".weight")) == bytes_of(want)) << m.path;
  }
  EXPECT_EQ(dw.size(), 21u);
  if (have_numpy()) loader_check(s.dir() / "dense", "--dequantized-from " + q(s.dir() / "q4"));
}

TEST(ConvertCli, DefaultsRecipeAndDtype) {
  Scratch s;
  const fs::path src = fixture("qwen2-bias-yarn-sliding");
  // Default --mlx-path is ./mlx_model, default quantization 4-bit / 64.
  RunResult r = run_in(s.dir(), "convert --model " + q(src) + " -q");
  ASSERT_EQ(r.status, 0) << r.err;
  auto config = nlohmann::json::parse(read_file(s.dir() / "mlx_model" / "config.json"));
  EXPECT_EQ(config["quantization"].dump(), R"({"bits":4,"group_size":64,"mode":"affine"})");

  r = run_in(s.dir(), "convert --model " + q(src) +
                          " --mlx-path mixed -q --quant-predicate mixed_2_6 --dtype float16");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("[INFO] Using dtype: float16"), std::string::npos) << r.out;
  if (have_numpy()) {
    auto summary = loader_check(s.dir() / "mixed", "--source " + q(src) + " --dtype F16");
    EXPECT_EQ(summary["model.layers.0.self_attn.v_proj"], 2);
    EXPECT_EQ(summary["model.layers.1.self_attn.v_proj"], 6);
    EXPECT_EQ(summary["model.layers.1.mlp.down_proj"], 6);
    EXPECT_EQ(summary["lm_head"], 6);
    EXPECT_EQ(summary["model.embed_tokens"], 2);
  }
}

TEST(ConvertCli, Help) {
  Scratch s;
  RunResult r = run_in(s.dir(), "convert --help");
  EXPECT_EQ(r.status, 0);
  for (const char* flag : {"--hf-path", "--mlx-path", "--quantize", "--q-bits", "--q-group-size",
                           "--quant-predicate", "--dtype", "--dequantize", "mixed_3_6"})
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
}

struct BadCase {
  const char* name;
  std::string args;  // after `convert --model SRC --mlx-path out`
  int status;
  const char* message;
};

TEST(ConvertCli, BadInputsFailCleanly) {
  const std::string src = q(fixture("llama-gqa-llama3"));
  const std::vector<BadCase> cases = {
      {"unknown predicate", "-q --quant-predicate mixed_5_8", 2, "invalid choice: 'mixed_5_8'"},
      {"bits", "-q --q-bits 7", 1, "7 bits is not supported"},
      {"group size", "-q --q-group-size 16", 1, "group size 16 is not supported"},
      {"non-integer bits", "-q --q-bits four", 2, "--q-bits"},
      {"quantize and dequantize", "-q -d", 1, "either --quantize or --dequantize"},
      {"mode", "-q --q-mode nvfp4", 1, "nvfp4"},
      {"upload", "--upload-repo me/model", 1, "--upload-repo"},
      {"dtype", "--dtype int8", 2, "invalid choice: 'int8'"},
  };
  for (const auto& c : cases) {
    Scratch s;
    RunResult r = run_in(s.dir(), "convert --model " + src + " --mlx-path out " + c.args);
    EXPECT_EQ(r.status, c.status) << c.name << "\n" << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.name << "\n" << r.err;
    EXPECT_TRUE(s.entries().empty()) << c.name;
  }
  Scratch s;
  RunResult r = run_in(s.dir(), "convert --mlx-path out -q");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--hf-path/--model"), std::string::npos) << r.err;
  r = run_in(s.dir(), "convert --model " + q(s.dir() / "missing") + " --mlx-path out");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("missing"), std::string::npos) << r.err;
  EXPECT_TRUE(s.entries().empty());
}

TEST(ConvertCli, ExistingOutputIsRefusedAndKept) {
  Scratch s;
  fs::create_directories(s.dir() / "out");
  std::ofstream(s.dir() / "out" / "mine.txt") << "keep me";
  RunResult r =
      run_in(s.dir(), "convert --model " + q(fixture("qwen3-plain")) + " --mlx-path out -q");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(s.dir() / "out" / "mine.txt"), "keep me");
  EXPECT_EQ(s.entries(), std::vector<std::string>{"out"});
}

TEST(ConvertCli, CorruptOrUnsupportedModelsLeaveNoOutput) {
  Scratch s;
  // Truncated weights.
  fs::copy(fixture("mistral-sliding"), s.dir() / "truncated");
  fs::resize_file(s.dir() / "truncated" / "model.safetensors", 4096);
  RunResult r = run_in(s.dir(), "convert --model truncated --mlx-path out -q");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("model.safetensors"), std::string::npos) << r.err;
  // Broken config.json.
  fs::copy(fixture("mistral-sliding"), s.dir() / "badjson");
  std::ofstream(s.dir() / "badjson" / "config.json") << "{\"architectures\": [";
  r = run_in(s.dir(), "convert --model badjson --mlx-path out -q");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("config.json"), std::string::npos) << r.err;
  // An architecture hearth does not know.
  fs::copy(fixture("mistral-sliding"), s.dir() / "arch");
  auto config = nlohmann::json::parse(read_file(s.dir() / "arch" / "config.json"));
  config["architectures"] = {"MambaForCausalLM"};
  std::ofstream(s.dir() / "arch" / "config.json") << config.dump();
  r = run_in(s.dir(), "convert --model arch --mlx-path sub/out -q");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("MambaForCausalLM"), std::string::npos) << r.err;
  std::vector<std::string> entries = s.entries();
  std::sort(entries.begin(), entries.end());
  EXPECT_EQ(entries, (std::vector<std::string>{"arch", "badjson", "truncated"}));
}

}  // namespace
