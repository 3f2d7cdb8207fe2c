// End-to-end tests of the `hearth` binary as a user drives it: output, exit codes, messages.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "ops/backend.h"

namespace {

namespace fs = std::filesystem;

struct RunResult {
  int status = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs `hearth ARGS` through the shell with optional stdin text.
RunResult run_hearth(const std::string& args, const std::string& stdin_text = "") {
  static int counter = 0;
  fs::path tmp = fs::temp_directory_path() /
                 ("hearth-e2e-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  fs::create_directories(tmp);
  std::ofstream(tmp / "in") << stdin_text;
  std::string cmd = std::string(HEARTH_BINARY) + " " + args + " <" + (tmp / "in").string() + " >" +
                    (tmp / "out").string() + " 2>" + (tmp / "err").string();
  int raw = std::system(cmd.c_str());
  RunResult r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = read_file(tmp / "out");
  r.err = read_file(tmp / "err");
  fs::remove_all(tmp);
  return r;
}

fs::path fixture(const std::string& name) {
  return fs::path(HEARTH_TEST_DATA_DIR) / "models" / name;
}

// A scratch copy of a fixture model that a test may damage.
class ModelCopy {
 public:
  explicit ModelCopy(const std::string& name) {
    static int counter = 0;
    dir_ = fs::temp_directory_path() /
           ("hearth-model-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::copy(fixture(name), dir_, fs::copy_options::recursive);
  }
  ~ModelCopy() { fs::remove_all(dir_); }
  const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
};

std::string quote(const fs::path& p) {
  return "'" + p.string() + "'";
}

TEST(CliGenerate, MatchesTransformersTextForEveryFixture) {
  for (const auto& e : fs::directory_iterator(fs::path(HEARTH_TEST_DATA_DIR) / "models")) {
    if (!fs::exists(e.path() / "golden.json")) continue;
    auto golden = nlohmann::json::parse(read_file(e.path() / "golden.json"))["e2e"];
    RunResult r = run_hearth("generate --model " + quote(e.path()) + " --prompt '" +
                             golden["prompt"].get<std::string>() + "' --max-tokens " +
                             std::to_string(golden["max_tokens"].get<int>()) + " --verbose False");
    EXPECT_EQ(r.status, 0) << e.path() << "\n" << r.err;
    EXPECT_EQ(r.out, golden["output_text"].get<std::string>() + "\n") << e.path();
  }
}

TEST(CliGenerate, VerboseOutputHasMlxLmLayout) {
  RunResult r = run_hearth("generate --model " + quote(fixture("qwen3-plain")) +
                           " -p hello -m 5 --temp 0.8 --seed 3");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("==========\n", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\n==========\nPrompt: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" tokens-per-sec\nGeneration: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Peak memory: "), std::string::npos) << r.out;
}

TEST(CliGenerate, SeedMakesSamplingRepeatable) {
  std::string args = "generate --model " + quote(fixture("qwen3-plain")) +
                     " -p hello -m 12 --temp 1.0 --top-p 0.9 --verbose False --seed ";
  RunResult a = run_hearth(args + "11"), b = run_hearth(args + "11");
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
}

TEST(CliGenerate, PromptFromStdin) {
  auto golden = nlohmann::json::parse(read_file(fixture("qwen3-plain") / "golden.json"))["e2e"];
  RunResult r = run_hearth(
      "generate --model " + quote(fixture("qwen3-plain")) + " --prompt - -m 12 --verbose F",
      golden["prompt"].get<std::string>());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, golden["output_text"].get<std::string>() + "\n");
}

TEST(CliErrors, MissingModelFolder) {
  RunResult r = run_hearth("generate --model /nonexistent/model -p hi");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("/nonexistent/model"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(CliErrors, TruncatedSafetensors) {
  ModelCopy m("qwen3-plain");
  fs::path w = m.dir() / "model.safetensors";
  fs::resize_file(w, fs::file_size(w) - 100);
  RunResult r = run_hearth("generate --model " + quote(m.dir()) + " -p hi");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("model.safetensors"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
}

TEST(CliErrors, CorruptSafetensorsHeader) {
  ModelCopy m("qwen3-plain");
  std::fstream f(m.dir() / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(8);
  f.write("}}}}", 4);
  f.close();
  RunResult r = run_hearth("generate --model " + quote(m.dir()) + " -p hi");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("model.safetensors"), std::string::npos) << r.err;
}

void edit_config(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  auto cfg = nlohmann::json::parse(read_file(dir / "config.json"));
  edit(cfg);
  std::ofstream(dir / "config.json") << cfg.dump(2);
}

TEST(CliErrors, ConfigMissingKey) {
  ModelCopy m("qwen3-plain");
  edit_config(m.dir(), [](nlohmann::json& c) { c.erase("num_hidden_layers"); });
  RunResult r = run_hearth("generate --model " + quote(m.dir()) + " -p hi");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("config.json: key 'num_hidden_layers' is missing"), std::string::npos)
      << r.err;
}

TEST(CliErrors, UnknownArchitecture) {
  ModelCopy m("qwen3-plain");
  edit_config(m.dir(), [](nlohmann::json& c) { c["architectures"] = {"FooForCausalLM"}; });
  RunResult r = run_hearth("generate --model " + quote(m.dir()) + " -p hi");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("architecture 'FooForCausalLM' is not supported"), std::string::npos)
      << r.err;
}

TEST(CliErrors, ShapeMismatchNamesTheTensor) {
  ModelCopy m("qwen3-plain");
  edit_config(m.dir(), [](nlohmann::json& c) { c["intermediate_size"] = 100; });
  RunResult r = run_hearth("generate --model " + quote(m.dir()) + " -p hi");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("mlp.gate_proj.weight"), std::string::npos) << r.err;
}

TEST(CliErrors, BadFlagValues) {
  std::string model = " --model " + quote(fixture("qwen3-plain"));
  RunResult r = run_hearth("generate" + model + " --temp hot");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("argument --temp: invalid float value: 'hot'"), std::string::npos) << r.err;
  r = run_hearth("generate" + model + " --max-tokens");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("argument --max-tokens: expected one argument"), std::string::npos);
  r = run_hearth("generate" + model + " --no-such-flag");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("unrecognized arguments: --no-such-flag"), std::string::npos);
  r = run_hearth("generate" + model + " --top-k 100000 --temp 1");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--top-k"), std::string::npos) << r.err;
  r = run_hearth("generate" + model + " --chat-template-config '{bad'");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--chat-template-config"), std::string::npos);
  r = run_hearth("frobnicate");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("unknown command 'frobnicate'"), std::string::npos);
}

TEST(CliBenchmark, PrintsTrialsAndWritesJson) {
  fs::path json =
      fs::temp_directory_path() / ("hearth-bench-" + std::to_string(::getpid()) + ".json");
  RunResult r = run_hearth("benchmark --model " + quote(fixture("qwen3-plain")) +
                           " -p 16 -g 8 -n 2 --json " + quote(json));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("Trial 2:  prompt_tps="), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Averages: prompt_tps="), std::string::npos) << r.out;
  auto j = nlohmann::json::parse(read_file(json));
  EXPECT_EQ(j["trials"].size(), 2u);
  EXPECT_GT(j["averages"]["generation_tps"].get<double>(), 0.0);
  EXPECT_GT(j["roofline"]["measured_read_bandwidth_bytes_per_s"].get<double>(), 1e8);
  fs::remove(json);
  r = run_hearth("benchmark --model " + quote(fixture("qwen3-plain")) + " -p 8 -g 4 -b 3 -n 1");
  EXPECT_EQ(r.status, 0) << r.err;
  // A quantized KV cache (on the bundled model: the fixtures' head dimension 16 is below MLX's
  // smallest group): its settings are recorded in the JSON.
  r = run_hearth("benchmark -p 64 -g 4 -n 1 --kv-bits 8 --kv-group-size 32 --json " + quote(json));
  ASSERT_EQ(r.status, 0) << r.err;
  j = nlohmann::json::parse(read_file(json));
  EXPECT_EQ(j["settings"]["kv_bits"], 8);
  EXPECT_EQ(j["settings"]["kv_group_size"], 32);
  fs::remove(json);
  r = run_hearth("benchmark --model " + quote(fixture("qwen3-plain")) + " -p 8 -g 4 --kv-bits 7");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("argument --kv-bits"), std::string::npos) << r.err;
  // Sampling flags (hearth's addition, to time the sampler): recorded; out-of-range values are
  // refused before any work, with the flag's name.
  r = run_hearth("benchmark --model " + quote(fixture("qwen3-plain")) +
                 " -p 8 -g 4 -n 1 --temp 0.8 --top-p 0.9 --min-p 0.05 --top-k 5 --json " +
                 quote(json));
  ASSERT_EQ(r.status, 0) << r.err;
  j = nlohmann::json::parse(read_file(json));
  EXPECT_FLOAT_EQ(j["settings"]["temp"].get<float>(), 0.8f);
  EXPECT_FLOAT_EQ(j["settings"]["top_p"].get<float>(), 0.9f);
  EXPECT_EQ(j["settings"]["top_k"], 5);
  fs::remove(json);
  r = run_hearth("benchmark --model " + quote(fixture("qwen3-plain")) +
                 " -p 8 -g 4 -n 1 --temp 0.8 --top-p 1.5");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("--top-p"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("Running warmup"), std::string::npos) << r.out;
}

// Without --device a command runs on the GPU when there is one and on the CPU otherwise; an
// explicit --device cuda without a usable GPU is an error that says so (no silent fallback).
// --matmul-precision takes bf16 or exact (ops/precision.h); anything else is a usage error. On the
// CPU both give the same text (CPU products are exact either way).
TEST(Cli, MatmulPrecisionFlag) {
  RunResult bad = run_hearth("generate --prompt hi --matmul-precision fp8");
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("argument --matmul-precision: invalid choice: 'fp8'"), std::string::npos)
      << bad.err;
  RunResult exact = run_hearth(
      "generate --prompt hi --max-tokens 4 --verbose False --device cpu --matmul-precision exact");
  RunResult bf16 = run_hearth(
      "generate --prompt hi --max-tokens 4 --verbose False --device cpu --matmul-precision bf16");
  EXPECT_EQ(exact.status, 0) << exact.err;
  EXPECT_EQ(bf16.status, 0) << bf16.err;
  EXPECT_EQ(exact.out, bf16.out);
}

TEST(Cli, DeviceDefaultsToTheGpuOnlyWhenOneIsThere) {
  bool gpu = true;
  try {
    hearth::ops::backend_for(hearth::Device::cuda(0));
  } catch (const hearth::Error&) {
    gpu = false;
  }
  RunResult plain = run_hearth("generate --prompt hi --max-tokens 2 --verbose False");
  EXPECT_EQ(plain.status, 0) << plain.err;
  EXPECT_FALSE(plain.out.empty());
  RunResult cuda = run_hearth("generate --prompt hi --max-tokens 2 --verbose False --device cuda");
  if (gpu) {
    EXPECT_EQ(cuda.status, 0) << cuda.err;
  } else {
    EXPECT_NE(cuda.status, 0);
    EXPECT_NE(cuda.err.find("no backend for device cuda:0"), std::string::npos) << cuda.err;
  }
}

}  // namespace
