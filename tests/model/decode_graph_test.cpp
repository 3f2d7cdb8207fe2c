// CUDA-graph decode (model/decode_graph.h) against eager decode on the same GPU: greedy tokens
// identical and logits within kLogitTolerance of the eager ones, over ~40 steps, for the fixture
// models and the bundled default model; batches of sequences of different lengths (padded to a
// bucket), a context that outgrows the captured block-table capacity, rotating caches that wrap,
// a quantized KV cache (also switched to mid-generation), quantized weights, snapshot/restore
// between steps, and a bad token id. Eager here is the same model with set_cuda_graphs(false).
// Both plan the attention's key splits from the same table width (kv::table_capacity), so the
// logits are expected bit-identical (difference 0, printed) except where the graph keeps a wider
// table than the eager step (after a restored snapshot shrinks the context) or pads the batch
// (GEMV row counts), where they agree to f32 rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "gen/batch_generate.h"
#include "gen/generate.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "model/decoder.h"
#include "model/model.h"
#include "ops/backend.h"
#include "ops/copy.h"
#include "ops/graph.h"
#include "ops/quantized.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;

// max |graph - eager| / max |eager| over a step's logits.
constexpr double kLogitTolerance = 1e-6;

fs::path fixture(const std::string& name) {
  return name == "default" ? fs::path(HEARTH_SOURCE_DIR) / "models" / "default"
                           : fs::path(HEARTH_TEST_DATA_DIR) / "models" / name;
}

std::vector<int32_t> prompt_of(const std::string& name) {
  if (name == "default") {
    nlohmann::json g =
        io::read_json_file(fs::path(HEARTH_TEST_DATA_DIR) / "default_model_golden.json");
    std::vector<int32_t> ids = g["perplexity"]["items"][0]["ids"].get<std::vector<int32_t>>();
    ids.resize(24);
    return ids;
  }
  return io::read_json_file(fixture(name) / "golden.json")["prompt_ids"]
      .get<std::vector<int32_t>>();
}

class DecodeGraph : public testing::Test {
 protected:
  void SetUp() override {
    try {
      ops::backend_for(Device::cuda(0));
    } catch (const Error& e) {
      GTEST_SKIP() << "no CUDA backend/GPU: " << e.what();
    }
    if (!ops::graphs_supported(Device::cuda(0)))
      GTEST_SKIP() << "CUDA graphs are off (HEARTH_CUDA_GRAPHS=0 or HEARTH_CUDA_PROFILE)";
  }
  static std::unique_ptr<model::Model> load(const fs::path& dir) {
    model::LoadOptions o;
    o.device = Device::cuda(0);
    return model::load_model(dir, o);
  }
};

model::DecoderModel& decoder(model::Model& m) {
  auto* d = dynamic_cast<model::DecoderModel*>(&m);
  HEARTH_CHECK(d != nullptr);
  return *d;
}

std::vector<float> to_host(const Tensor& t) {
  return ops::to_device(t, Device::cpu()).to_vector<float>();
}

int32_t argmax(const float* row, int64_t n) {
  return int32_t(std::max_element(row, row + n) - row);
}

// Every step's logits (one row per sequence) and the greedy tokens they give.
struct Trace {
  std::vector<std::vector<float>> logits;
  std::vector<int32_t> tokens;
};

// A scenario of forward passes over caches it makes itself, run once eagerly and once with graphs.
using Scenario = std::function<Trace(model::Model&)>;

void expect_same(const Trace& graph, const Trace& eager, const std::string& what) {
  ASSERT_EQ(graph.tokens, eager.tokens) << what;
  ASSERT_EQ(graph.logits.size(), eager.logits.size()) << what;
  double worst = 0;
  for (size_t i = 0; i < eager.logits.size(); ++i) {
    const auto &a = graph.logits[i], &b = eager.logits[i];
    ASSERT_EQ(a.size(), b.size());
    double diff = 0, ref = 0;
    for (size_t j = 0; j < a.size(); ++j) {
      diff = std::max(diff, double(std::fabs(a[j] - b[j])));
      ref = std::max(ref, double(std::fabs(b[j])));
    }
    worst = std::max(worst, diff / std::max(ref, 1e-30));
  }
  std::printf("  [decode graph] %s: %zu steps, max relative logit difference %.3g\n", what.c_str(),
              eager.logits.size(), worst);
  EXPECT_LE(worst, kLogitTolerance) << what;
}

// Runs `scenario` eagerly, then with graphs; returns the graph run's captures.
int64_t compare(model::Model& m, const Scenario& scenario, const std::string& what,
                int64_t min_replays = 30) {
  m.set_cuda_graphs(false);
  Trace eager = scenario(m);
  EXPECT_EQ(decoder(m).cuda_graph_replays(), 0);
  m.set_cuda_graphs(true);
  Trace graph = scenario(m);
  const int64_t captures = decoder(m).cuda_graph_captures();
  EXPECT_GE(decoder(m).cuda_graph_replays(), min_replays) << what;
  expect_same(graph, eager, what);
  return captures;
}

// Prefills each prompt (eagerly: several tokens), then decodes `steps` greedy tokens for all of
// them in one batch per step. `between(step)` runs before each step.
Trace batch_decode(model::Model& m, std::vector<kv::KvCache*> caches,
                   const std::vector<std::vector<int32_t>>& prompts, int steps,
                   const std::function<void(int)>& between = {}) {
  const int64_t vocab = m.config().vocab_size;
  Trace t;
  std::vector<int32_t> last;
  for (size_t s = 0; s < prompts.size(); ++s) {
    model::SequenceInput in{.tokens = prompts[s], .cache = caches[s], .all_logits = false};
    std::vector<float> row = to_host(m.forward(std::span<const model::SequenceInput>(&in, 1)));
    last.push_back(argmax(row.data(), vocab));
  }
  for (int step = 0; step < steps; ++step) {
    if (between) between(step);
    std::vector<model::SequenceInput> batch;
    for (size_t s = 0; s < caches.size(); ++s)
      batch.push_back({.tokens = std::span<const int32_t>(&last[s], 1), .cache = caches[s]});
    std::vector<float> out = to_host(m.forward(batch));
    for (size_t s = 0; s < caches.size(); ++s) {
      last[s] = argmax(out.data() + int64_t(s) * vocab, vocab);
      t.tokens.push_back(last[s]);
    }
    t.logits.push_back(std::move(out));
  }
  return t;
}

std::shared_ptr<kv::BlockPool> pool_for(model::Model& m, int block_size, int64_t blocks,
                                        int kv_bits = 0) {
  kv::KvLayout layout = m.kv_layout(block_size);
  layout.kv_bits = kv_bits;
  layout.kv_group_size = 32;
  return std::make_shared<kv::BlockPool>(layout, blocks);
}

TEST_F(DecodeGraph, FixtureModelsMatchEager) {
  for (const std::string name :
       {"llama-gqa-llama3", "llama-tied-bias-linear-old-rope", "mistral-sliding",
        "qwen2-bias-yarn-sliding", "qwen3-plain", "qwen3-qknorm-dynamic", "default"}) {
    auto m = load(fixture(name));
    const bool dynamic = m->config().rope.type == ops::RopeType::dynamic;
    const int64_t captures = compare(
        *m,
        [&](model::Model& mm) {
          auto pool = pool_for(mm, 4, 128);
          kv::KvCache cache(pool);
          return batch_decode(mm, {&cache}, {prompt_of(name)}, 40);
        },
        name, dynamic ? 0 : 30);
    // Dynamic RoPE recomputes its frequencies per step: it stays eager.
    if (dynamic) {
      EXPECT_EQ(captures, 0) << name;
    } else {
      EXPECT_GE(captures, 1) << name;
    }
  }
}

TEST_F(DecodeGraph, BatchOfThreeSequencesOfDifferentLengths) {
  auto m = load(fixture("default"));
  std::vector<int32_t> p = prompt_of("default");
  std::vector<std::vector<int32_t>> prompts{
      {p.begin(), p.begin() + 3}, p, {p.begin(), p.begin() + 11}};
  compare(
      *m,
      [&](model::Model& mm) {
        auto pool = pool_for(mm, 16, 64);
        kv::KvCache a(pool), b(pool), c(pool);
        return batch_decode(mm, {&a, &b, &c}, prompts, 40);
      },
      "3 sequences (bucket of 4)");
  // The generation engine's batch path (one forward per step for all unfinished sequences).
  gen::GenerationOptions options;
  options.max_tokens = 40;
  options.kv_block_size = 16;
  m->set_cuda_graphs(false);
  gen::BatchResult eager = gen::batch_generate(*m, prompts, options);
  m->set_cuda_graphs(true);
  gen::BatchResult graph = gen::batch_generate(*m, prompts, options);
  EXPECT_EQ(graph.tokens, eager.tokens);
  EXPECT_GE(decoder(*m).cuda_graph_replays(), 30);
}

TEST_F(DecodeGraph, ContextOutgrowingTheCapacityIsCapturedAgain) {
  auto m = load(fixture("default"));
  nlohmann::json g =
      io::read_json_file(fs::path(HEARTH_TEST_DATA_DIR) / "default_model_golden.json");
  std::vector<int32_t> prompt = g["perplexity"]["items"][1]["ids"].get<std::vector<int32_t>>();
  // The smallest capacity holds 256 tokens: 230 + 40 steps cross it.
  prompt.resize(230);
  const int64_t captures = compare(
      *m,
      [&](model::Model& mm) {
        auto pool = pool_for(mm, 16, 64);
        kv::KvCache cache(pool);
        return batch_decode(mm, {&cache}, {prompt}, 40);
      },
      "230-token prompt + 40 steps");
  EXPECT_GE(captures, 2) << "the capacity doubled once";
}

TEST_F(DecodeGraph, RotatingCachesThatWrap) {
  // Sliding-window layers as rings (window 7 and its GQA fixture), and --max-kv-size rings with 4
  // sink tokens on full-attention layers: 40 steps wrap each several times (key positions).
  struct Case {
    std::string model;
    int64_t max_kv_size;
  };
  for (const Case& c : {Case{"mistral-sliding", 0}, Case{"qwen2-bias-yarn-sliding", 0},
                        Case{"llama-gqa-llama3", 16}, Case{"default", 20}}) {
    auto m = load(fixture(c.model));
    gen::GenerationOptions options;
    options.kv_block_size = 4;
    options.max_kv_size = c.max_kv_size;
    options.rotating_window_layers = true;
    compare(
        *m,
        [&](model::Model& mm) {
          auto cache = gen::make_prompt_cache(mm, options, 200);
          return batch_decode(mm, {cache.get()}, {prompt_of(c.model)}, 40);
        },
        c.model + " rotating, max_kv_size " + std::to_string(c.max_kv_size));
  }
  // A ring larger than the model's window (a loaded prompt cache can be one): once wrapped, its
  // one-token steps mask by key position, which the graph's tables then carry.
  auto m = load(fixture("mistral-sliding"));
  compare(
      *m,
      [&](model::Model& mm) {
        std::vector<kv::CachePolicy> ring(size_t(mm.config().num_layers), kv::CachePolicy{12, 0});
        kv::KvCache cache(pool_for(mm, 4, 64), ring);
        return batch_decode(mm, {&cache}, {prompt_of("mistral-sliding")}, 40);
      },
      "mistral-sliding, rings of 12 over a window of 7 (key positions)");
}

TEST_F(DecodeGraph, QuantizedKvCache) {
  auto m = load(fixture("default"));
  for (int bits : {4, 8}) {
    compare(
        *m,
        [&](model::Model& mm) {
          auto pool = pool_for(mm, 16, 64, bits);
          kv::KvCache a(pool), b(pool);
          std::vector<int32_t> p = prompt_of("default");
          return batch_decode(mm, {&a, &b}, {p, {p.begin(), p.begin() + 5}}, 40);
        },
        std::to_string(bits) + "-bit KV cache");
  }
  // Generation that converts its cache to 8 bits after 30 tokens: a new pool under the graph.
  gen::GenerationOptions options;
  options.max_tokens = 40;
  options.kv_block_size = 16;
  options.kv_bits = 8;
  options.kv_group_size = 32;
  options.quantized_kv_start = 30;
  auto run = [&] {
    gen::TokenGenerator generator(*m, prompt_of("default"), options);
    Trace t;
    while (auto s = generator.next()) {
      t.tokens.push_back(s->token);
      t.logits.emplace_back(s->logprobs().begin(), s->logprobs().end());
    }
    return t;
  };
  m->set_cuda_graphs(false);
  Trace eager = run();
  m->set_cuda_graphs(true);
  Trace graph = run();
  expect_same(graph, eager, "generation switching to an 8-bit cache at 30 tokens (log-probs)");
  EXPECT_GE(decoder(*m).cuda_graph_captures(), 2);
}

// Quantizes every 2-D weight (embedding and head included) to 4 bits in groups of 32.
fs::path quantized_folder(const std::string& name) {
  fs::path out = fs::temp_directory_path() / ("hearth-graph-q-" + std::to_string(::getpid()));
  fs::create_directories(out);
  io::WeightSet ws = io::WeightSet::load_dir(fixture(name), io::WeightResidency::mapped);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const std::string& n : ws.names()) {
    Tensor t = ws.get(n);
    if (t.ndim() != 2 || t.dim(1) % 32 != 0) {
      tensors.emplace_back(n, t);
      continue;
    }
    ops::QuantizedWeight q = ops::affine_quantize(t, 4, 32, DType::bf16);
    const std::string prefix = n.substr(0, n.size() - 7);  // minus ".weight"
    tensors.emplace_back(n, q.packed);
    tensors.emplace_back(prefix + ".scales", q.scales);
    tensors.emplace_back(prefix + ".biases", q.biases);
  }
  io::save_safetensors(out / "model.safetensors", tensors, {{"format", "mlx"}});
  nlohmann::json cfg = io::read_json_file(fixture(name) / "config.json");
  cfg["quantization"] = {{"group_size", 32}, {"bits", 4}};
  cfg["quantization_config"] = cfg["quantization"];
  std::ofstream(out / "config.json") << cfg.dump(2);
  return out;
}

TEST_F(DecodeGraph, QuantizedWeights) {
  // Exact products, then MatmulPrecision::bf16: on the default model (K = 384 and 1024) the
  // tensor-core 4-bit GEMV with grouped q/k/v and fused gate/up launches; the fixture's K = 64
  // keeps the f32 GEMV.
  for (const std::string name : {"llama-gqa-llama3", "default"}) {
    const fs::path dir = quantized_folder(name);
    {
      auto m = load(dir);
      for (auto precision : {ops::MatmulPrecision::exact, ops::MatmulPrecision::bf16})
        for (int batch : {1, 3}) {
          m->set_matmul_precision(precision);
          compare(
              *m,
              [&](model::Model& mm) {
                auto pool = pool_for(mm, 4, 256);
                std::vector<std::unique_ptr<kv::KvCache>> caches;
                std::vector<kv::KvCache*> raw;
                std::vector<std::vector<int32_t>> prompts;
                for (int s = 0; s < batch; ++s) {
                  caches.push_back(std::make_unique<kv::KvCache>(pool));
                  raw.push_back(caches.back().get());
                  std::vector<int32_t> p = prompt_of(name);
                  p.resize(p.size() - size_t(s));
                  prompts.push_back(p);
                }
                return batch_decode(mm, raw, prompts, 40);
              },
              name + ", 4-bit weights, " + ops::matmul_precision_name(precision) + ", batch " +
                  std::to_string(batch));
        }
    }
    fs::remove_all(dir);
  }
}

TEST_F(DecodeGraph, SnapshotAndRestoreBetweenSteps) {
  // The block tables under the graph change when a snapshot is restored (and a shared last block
  // is copied on write): the replays must follow.
  auto m = load(fixture("default"));
  compare(
      *m,
      [&](model::Model& mm) {
        auto pool = pool_for(mm, 16, 64);
        kv::KvCache cache(pool);
        kv::KvSnapshot snap;
        return batch_decode(mm, {&cache}, {prompt_of("default")}, 40, [&](int step) {
          if (step == 10 || step == 25) snap = cache.snapshot();
          if (step == 20 || step == 35) cache.restore(snap);
        });
      },
      "snapshot at 10/25, restore at 20/35");
}

TEST_F(DecodeGraph, BadTokenIdIsStillReported) {
  auto m = load(fixture("default"));
  const int32_t vocab = int32_t(m->config().vocab_size);
  auto scenario = [&](model::Model& mm) {
    auto pool = pool_for(mm, 16, 64);
    kv::KvCache cache(pool);
    return batch_decode(mm, {&cache}, {prompt_of("default")}, 40, [&](int step) {
      if (step != 5 && step != 30) return;
      for (int32_t bad : {vocab, -1}) {
        model::SequenceInput in{
            .tokens = std::span<const int32_t>(&bad, 1), .cache = &cache, .all_logits = false};
        try {
          mm.forward(std::span<const model::SequenceInput>(&in, 1));
          ADD_FAILURE() << "token id " << bad << " was accepted";
        } catch (const Error& e) {
          EXPECT_EQ(e.code(), ErrorCode::invalid_argument) << e.what();
          EXPECT_NE(std::string(e.what()).find(std::to_string(bad)), std::string::npos) << e.what();
        }
      }
    });
  };
  // The failed steps leave the cache as it was: decoding goes on as if they never happened.
  compare(*m, scenario, "bad ids at steps 5 and 30");
}

}  // namespace
}  // namespace hearth
