// Golden tests: tiny random models of every supported architecture against HF transformers.
// Fixtures in tests/data/models/<name>/ were written by tools/golden/make_fixtures.py on the GPU
// machine (transformers 5.17, float32 on its CPU, from the same bf16 weights hearth loads).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "gen/batch_generate.h"
#include "gen/generate.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "model/registry.h"
#include "ops/backend.h"
#include "ops/copy.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;

fs::path models_dir() {
  return fs::path(HEARTH_TEST_DATA_DIR) / "models";
}

std::vector<std::string> fixture_names() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(models_dir()))
    if (fs::exists(e.path() / "golden.json")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Every case runs on the CPU and, where hearth has a CUDA backend and a GPU, on cuda:0 (skipped
// with the reason otherwise: run the suite on the GPU machine).
struct GoldenCase {
  std::string model;
  Device device;
};

class Golden : public testing::TestWithParam<GoldenCase> {
 protected:
  void SetUp() override {
    try {
      ops::backend_for(device());
    } catch (const Error& e) {
      GTEST_SKIP() << "no backend for " << device().str() << ": " << e.what();
    }
  }
  fs::path dir() const { return models_dir() / GetParam().model; }
  Device device() const { return GetParam().device; }
  nlohmann::json golden() const { return io::read_json_file(dir() / "golden.json"); }
};

model::LoadOptions load_options(Device device, ops::MatmulPrecision precision) {
  model::LoadOptions options;
  options.device = device;
  options.matmul_precision = precision;
  return options;
}

// Logits of one forward pass over prompt + continuation, every position, against HF's: the
// largest |difference| over the largest |logit| of each position, at most `tolerance`.
void expect_logits_match(const fs::path& dir, Device device, ops::MatmulPrecision precision,
                         double tolerance) {
  auto model = model::load_model(dir, load_options(device, precision));
  auto file = io::SafetensorsFile::open(dir / "golden_logits.safetensors");
  std::vector<int32_t> ids = file->tensor("input_ids").to_vector<int32_t>();
  Tensor expected = file->tensor("logits");
  const int64_t L = expected.dim(0), V = expected.dim(1);
  ASSERT_EQ(int64_t(ids.size()), L);

  auto pool = std::make_shared<kv::BlockPool>(model->kv_layout(16), 64);
  kv::KvCache cache(pool);
  model::SequenceInput in{.tokens = ids, .cache = &cache, .all_logits = true};
  Tensor logits =
      ops::to_device(model->forward(std::span<const model::SequenceInput>(&in, 1)), Device::cpu());
  ASSERT_EQ(logits.shape(), Dims({L, V}));
  std::vector<float> got = logits.to_vector<float>(), want = expected.to_vector<float>();
  double worst = 0;
  for (int64_t t = 0; t < L; ++t) {
    double max_ref = 0, max_diff = 0;
    for (int64_t v = 0; v < V; ++v) {
      max_ref = std::max(max_ref, double(std::fabs(want[t * V + v])));
      max_diff = std::max(max_diff, double(std::fabs(got[t * V + v] - want[t * V + v])));
    }
    EXPECT_LE(max_diff / max_ref, tolerance) << "position " << t;
    worst = std::max(worst, max_diff / max_ref);
  }
  std::printf("  [%s, %s matmuls] %lld positions, largest relative logit error %.2e\n",
              device.str().c_str(), ops::matmul_precision_name(precision), (long long)L, worst);
}

TEST_P(Golden, PerPositionLogitsMatchTransformers) {
  expect_logits_match(dir(), device(), ops::MatmulPrecision::exact, 1e-4);
}

// MatmulPrecision::bf16 (the CLI default) rounds the input of CUDA prefill GEMMs to bf16 once, as
// PyTorch and MLX compute a bf16 model: logits within bf16 tolerance of HF's f32 ones (a bf16
// rounding is 2^-9 = 2e-3 relative; 2e-2 leaves room for its accumulation over the layers). On
// the CPU the setting changes nothing and the exact bound would hold.
TEST_P(Golden, PerPositionLogitsWithBf16MatmulsWithinBf16Tolerance) {
  expect_logits_match(dir(), device(), ops::MatmulPrecision::bf16, 2e-2);
}

// Options of the greedy-decode tests: the prompt is prefilled in small chunks so that chunk
// boundaries and KV block boundaries are crossed (the dynamic-RoPE fixture keeps HF's single-pass
// prefill: its frequencies depend on the chunking).
gen::GenerationOptions greedy_options(const model::Model& model, size_t max_tokens) {
  gen::GenerationOptions options;
  options.max_tokens = int(max_tokens);
  options.kv_block_size = 8;
  options.prefill_step_size = model.config().rope.type == ops::RopeType::dynamic ? 4096 : 7;
  return options;
}

// Greedy decoding through the generation engine, token for token equal to model.generate.
TEST_P(Golden, GreedyContinuationMatchesTransformers) {
  nlohmann::json g = golden();
  auto model = model::load_model(dir(), load_options(device(), ops::MatmulPrecision::exact));
  std::vector<int32_t> prompt = g["prompt_ids"].get<std::vector<int32_t>>();
  std::vector<int32_t> expected = g["greedy_ids"].get<std::vector<int32_t>>();
  gen::TokenGenerator generator(*model, prompt, greedy_options(*model, expected.size()));
  std::vector<int32_t> got;
  while (auto step = generator.next()) got.push_back(step->token);
  EXPECT_EQ(got, expected) << "smallest top-2 margin in the fixture: " << g["min_margin"];
}

// Pipelined greedy decode (gen::TokenGenerator; on by default on a GPU, forced here on the CPU
// too) queues the step that consumes each token before the host reads it. It gives HF's greedy
// continuation, and a consumer that stops early leaves the cache as decode without pipelining
// does (the step queued ahead trimmed off, whether the cache is asked for or the generator is
// destroyed), so that a second turn from that cache continues HF's continuation.
TEST_P(Golden, PipelinedGreedyDecodeMatchesAndLeavesTheSameCache) {
  nlohmann::json g = golden();
  auto model = model::load_model(dir(), load_options(device(), ops::MatmulPrecision::exact));
  std::vector<int32_t> prompt = g["prompt_ids"].get<std::vector<int32_t>>();
  std::vector<int32_t> expected = g["greedy_ids"].get<std::vector<int32_t>>();
  ASSERT_GE(expected.size(), 8u);
  gen::GenerationOptions pipelined = greedy_options(*model, expected.size());
  pipelined.pipelined_decode = true;
  gen::GenerationOptions plain = pipelined;
  plain.pipelined_decode = false;
  // Rotating caches (sliding-window layers) cannot give a token back: those decode unpipelined.
  bool rotating = false;
  for (const kv::CachePolicy& p : gen::cache_policies(*model, pipelined)) rotating |= p.rotating();
  {
    gen::TokenGenerator generator(*model, prompt, pipelined);
    EXPECT_EQ(generator.pipelined(), !rotating);
    std::vector<int32_t> got;
    while (auto step = generator.next()) got.push_back(step->token);
    EXPECT_EQ(got, expected) << "smallest top-2 margin in the fixture: " << g["min_margin"];
  }
  // Stop after k tokens, with the step that consumes token k - 1 already queued.
  const int k = 5;
  const int64_t horizon = int64_t(prompt.size() + expected.size());
  auto first_turn = [&](const gen::GenerationOptions& o, bool ask_for_cache) {
    std::shared_ptr<kv::KvCache> cache = gen::make_prompt_cache(*model, o, horizon);
    gen::TokenGenerator generator(*model, prompt, o, cache);
    EXPECT_EQ(generator.pipelined(), o.pipelined_decode.value() && !rotating);
    for (int i = 0; i < k; ++i) {
      auto step = generator.next();
      EXPECT_TRUE(step && step->token == expected[size_t(i)]) << "token " << i;
    }
    return ask_for_cache ? generator.shared_cache() : cache;  // else trimmed as it is destroyed
  };
  for (bool ask : {true, false}) {
    std::shared_ptr<kv::KvCache> a = first_turn(pipelined, ask), b = first_turn(plain, ask);
    EXPECT_EQ(a->size(), int64_t(prompt.size()) + k - 1);
    EXPECT_EQ(b->size(), a->size());
    for (int l = 0; l < a->n_layers(); l += std::max(1, a->n_layers() - 1)) {
      kv::LayerState sa = a->read_state(l), sb = b->read_state(l);
      for (auto [x, y] : {std::pair{&sa.keys, &sb.keys}, std::pair{&sa.values, &sb.values}})
        EXPECT_EQ(ops::cast(*x, DType::f32).to_vector<float>(),
                  ops::cast(*y, DType::f32).to_vector<float>())
            << "layer " << l;
    }
    // The second turn feeds token k - 1 and continues HF's continuation.
    std::vector<int32_t> next_prompt = {expected[k - 1]};
    gen::GenerationOptions rest = pipelined;
    rest.max_tokens = 3;
    gen::TokenGenerator second(*model, next_prompt, rest, a);
    for (int i = 0; i < 3; ++i) {
      auto step = second.next();
      ASSERT_TRUE(step);
      EXPECT_EQ(step->token, expected[size_t(k + i)]) << "second turn, token " << i;
    }
  }
}

// gen::batch_generate pipelines greedy steps the same way; a sequence that stops on a token read
// while the next step was queued wastes its row of that step. With a stop id taken from HF's
// continuation (so the fixture's sequence stops part-way, the others run on), the pipelined
// batch gives the tokens, finish reasons and counts of the unpipelined one, and HF's prefix.
TEST_P(Golden, PipelinedBatchDecodeStopsLikeUnpipelined) {
  nlohmann::json g = golden();
  auto model = model::load_model(dir(), load_options(device(), ops::MatmulPrecision::exact));
  std::vector<int32_t> prompt = g["prompt_ids"].get<std::vector<int32_t>>();
  std::vector<int32_t> expected = g["greedy_ids"].get<std::vector<int32_t>>();
  ASSERT_GE(expected.size(), 6u);
  const int32_t stop = expected[4];
  const size_t stop_at =
      size_t(std::find(expected.begin(), expected.end(), stop) - expected.begin());
  std::vector<std::vector<int32_t>> prompts{prompt, {prompt.begin(), prompt.begin() + 2}, {5, 9}};
  gen::GenerationOptions options = greedy_options(*model, expected.size());
  options.pipelined_decode = false;
  const std::vector<int32_t> eos{stop};
  gen::BatchResult plain = gen::batch_generate(*model, prompts, options, eos);
  options.pipelined_decode = true;
  gen::BatchResult pipelined = gen::batch_generate(*model, prompts, options, eos);
  EXPECT_EQ(pipelined.tokens[0],
            std::vector<int32_t>(expected.begin(), expected.begin() + stop_at));
  EXPECT_EQ(pipelined.finish_reasons[0], "stop");
  EXPECT_EQ(pipelined.tokens, plain.tokens);
  EXPECT_EQ(pipelined.finish_reasons, plain.finish_reasons);
  EXPECT_EQ(pipelined.stats.generation_tokens, plain.stats.generation_tokens);
}

// Greedy decoding picks argmax over the logits on the model's device and computes the
// log-probabilities only when asked (gen::greedy_on_device); a logits processor (here one that
// changes nothing) sends every step through the host sampler instead. Both give the same tokens
// and, when asked, log-probabilities that agree to f32 rounding.
TEST_P(Golden, GreedyOnDeviceMatchesTheHostSampler) {
  nlohmann::json g = golden();
  auto model = model::load_model(dir(), load_options(device(), ops::MatmulPrecision::exact));
  std::vector<int32_t> prompt = g["prompt_ids"].get<std::vector<int32_t>>();
  gen::GenerationOptions device_greedy;
  device_greedy.max_tokens = 12;
  gen::GenerationOptions host = device_greedy;
  host.extra_processors.push_back([](std::span<const int32_t>, std::span<float>) {});
  ASSERT_TRUE(gen::greedy_on_device(device_greedy, 0));
  gen::TokenGenerator a(*model, prompt, device_greedy), b(*model, prompt, host);
  for (int step = 0; step < 12; ++step) {
    auto sa = a.next();
    auto sb = b.next();
    ASSERT_TRUE(sa && sb);
    EXPECT_EQ(sa->token, sb->token) << "step " << step;
    if (step % 4 != 0) continue;  // log-probabilities on some steps only: they are optional
    std::span<const float> la = sa->logprobs(), lb = sb->logprobs();
    ASSERT_EQ(la.size(), lb.size());
    float worst = 0.0f;
    for (size_t i = 0; i < la.size(); ++i) worst = std::max(worst, std::abs(la[i] - lb[i]));
    EXPECT_LT(worst, 1e-4f) << "step " << step;
    EXPECT_EQ(sa->token, int32_t(std::max_element(la.begin(), la.end()) - la.begin()));
  }
  EXPECT_FALSE(a.next());
}

// Sampling with temperature, filters and penalties runs on the model's device (gen::DeviceSampler:
// only token ids come back); with the same seed it picks the tokens of the host sampler (forced
// here by a logits processor that changes nothing) and of the same model on the CPU. Their logits
// differ by f32 rounding only, which moves a token only when a draw lands within that rounding of
// a boundary.
TEST_P(Golden, SamplingOnDeviceMatchesTheHostSampler) {
  nlohmann::json g = golden();
  auto model = model::load_model(dir(), load_options(device(), ops::MatmulPrecision::exact));
  std::vector<int32_t> prompt = g["prompt_ids"].get<std::vector<int32_t>>();
  gen::GenerationOptions sampled;
  sampled.max_tokens = 16;
  sampled.seed = 1234;
  sampled.sampling.temp = 0.9f;
  sampled.sampling.top_p = 0.95f;
  sampled.sampling.min_p = 0.02f;
  sampled.sampling.min_tokens_to_keep = 2;
  sampled.sampling.top_k = 20;
  sampled.processors.repetition_penalty = 1.3f;
  sampled.processors.repetition_context_size = 8;
  sampled.processors.logit_bias = {{int32_t(prompt.back()), 0.5f}};
  gen::GenerationOptions host = sampled;
  host.extra_processors.push_back([](std::span<const int32_t>, std::span<float>) {});
  EXPECT_EQ(gen::sample_on_device(sampled, device()), !device().is_cpu());
  ASSERT_FALSE(gen::sample_on_device(host, device()));
  std::unique_ptr<model::Model> cpu_model;
  if (!device().is_cpu())
    cpu_model = model::load_model(dir(), load_options(Device::cpu(), ops::MatmulPrecision::exact));
  gen::TokenGenerator a(*model, prompt, sampled), b(*model, prompt, host);
  std::optional<gen::TokenGenerator> c;
  if (cpu_model) c.emplace(*cpu_model, prompt, sampled);
  for (int step = 0; step < 16; ++step) {
    auto sa = a.next();
    auto sb = b.next();
    ASSERT_TRUE(sa && sb);
    ASSERT_EQ(sa->token, sb->token) << "step " << step;
    if (c) {
      auto sc = c->next();
      ASSERT_TRUE(sc);
      ASSERT_EQ(sa->token, sc->token) << "step " << step << " (the model on the CPU)";
    }
    // Asking for the cache drops a step queued ahead (pipelined decode on a GPU) and rewinds its
    // draw: the tokens after it still follow the host sampler's.
    if (step == 7) {
      EXPECT_EQ(a.cache().size(), int64_t(prompt.size()) + step);
    }
    if (step % 5 != 0) continue;  // log-probabilities (processed logits) on some steps only
    std::span<const float> la = sa->logprobs(), lb = sb->logprobs();
    ASSERT_EQ(la.size(), lb.size());
    float worst = 0.0f;
    for (size_t i = 0; i < la.size(); ++i)
      if (std::isfinite(lb[i])) worst = std::max(worst, std::abs(la[i] - lb[i]));
    EXPECT_LT(worst, 1e-4f) << "step " << step;
  }
}

std::vector<GoldenCase> golden_cases() {
  std::vector<GoldenCase> cases;
  for (const Device d : {Device::cpu(), Device::cuda(0)})
    for (const auto& name : fixture_names()) cases.push_back({name, d});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Models, Golden, testing::ValuesIn(golden_cases()),
                         [](const testing::TestParamInfo<GoldenCase>& info) {
                           std::string n = info.param.model + "_" +
                                           (info.param.device.is_cpu() ? "cpu" : "cuda");
                           for (char& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

TEST(GoldenFixtures, EveryRegisteredArchitectureHasOne) {
  std::set<std::string> covered;
  for (const auto& name : fixture_names()) {
    nlohmann::json cfg = io::read_json_file(models_dir() / name / "config.json");
    covered.insert(cfg["architectures"][0].get<std::string>());
  }
  for (const std::string& arch : model::supported_architectures())
    EXPECT_TRUE(covered.count(arch)) << arch << " has no golden fixture";
}

}  // namespace
}  // namespace hearth
