// Rotating caches and snapshots on real (tiny) models:
//  - sliding-window layers with a ring of max_size = window (mlx-lm's make_cache for mistral /
//    qwen2) give transformers' greedy tokens (golden.json), the prompt prefilled in one chunk or
//    in chunks of 3 and 5 (prompts of 20 tokens: the rings wrap during prefill and decode);
//  - snapshot / restore: generate, snap, generate further, restore, regenerate: the same tokens
//    and bit-identical logits, for standard caches and for rotating caches that have wrapped.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "gen/batch_generate.h"
#include "gen/generate.h"
#include "io/json_file.h"
#include "model/model.h"
#include "ops/backend.h"
#include "ops/copy.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;

model::LoadOptions on(Device device) {
  model::LoadOptions o;
  o.device = device;
  return o;
}

fs::path model_dir(const std::string& name) {
  return fs::path(HEARTH_TEST_DATA_DIR) / "models" / name;
}

class RotatingModel : public testing::TestWithParam<Device> {
 protected:
  void SetUp() override {
    try {
      ops::backend_for(GetParam());
    } catch (const Error& e) {
      GTEST_SKIP() << "no backend for " << GetParam().str() << ": " << e.what();
    }
  }
};

TEST_P(RotatingModel, RingCachesOnWindowLayersMatchTransformers) {
  for (const std::string name : {"mistral-sliding", "qwen2-bias-yarn-sliding"}) {
    nlohmann::json g = io::read_json_file(model_dir(name) / "golden.json");
    auto model = model::load_model(model_dir(name), on(GetParam()));
    std::vector<int32_t> prompt = g["prompt_ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> expected = g["greedy_ids"].get<std::vector<int32_t>>();
    for (int step : {4096, 3, 5}) {
      SCOPED_TRACE(name + " prefill_step_size " + std::to_string(step));
      gen::GenerationOptions options;
      options.max_tokens = int(expected.size());
      options.kv_block_size = 4;
      options.prefill_step_size = step;
      options.rotating_window_layers = true;
      gen::TokenGenerator generator(*model, prompt, options);
      std::vector<int32_t> got;
      while (auto s = generator.next()) got.push_back(s->token);
      EXPECT_EQ(got, expected) << "smallest top-2 margin in the fixture: " << g["min_margin"];
      // The window layers really ran on rings: wrapped, holding one window.
      const kv::KvCache& cache = generator.cache();
      int rings = 0;
      for (int l = 0; l < cache.n_layers(); ++l) {
        const int window = model->config().sliding_window[size_t(l)];
        if (window == 0) {
          EXPECT_FALSE(cache.policy(l).rotating());
          continue;
        }
        ++rings;
        EXPECT_EQ(cache.policy(l), (kv::CachePolicy{window, 0}));
        EXPECT_GT(cache.layer(l).offset(), window);
        EXPECT_EQ(cache.layer(l).size(), window);
        EXPECT_FALSE(cache.layer(l).is_trimmable());
      }
      EXPECT_GT(rings, 0);
    }
  }
}

TEST_P(RotatingModel, LargeRingEqualsTheStandardCache) {
  // max_kv_size past every token: the ring never drops a token, so the logits are the standard
  // cache's, bit for bit (same slots, same visible keys).
  auto model = model::load_model(model_dir("qwen3-plain"), on(GetParam()));
  std::vector<int32_t> prompt{5, 17, 200, 33, 41, 9, 12, 88, 100, 3, 71};
  auto run = [&](int64_t max_kv) {
    gen::GenerationOptions options;
    options.max_tokens = 12;
    options.max_kv_size = max_kv;
    options.prefill_step_size = 4;
    gen::TokenGenerator generator(*model, prompt, options);
    std::vector<float> all;
    while (auto s = generator.next())
      all.insert(all.end(), s->logprobs().begin(), s->logprobs().end());
    EXPECT_EQ(generator.cache().policy(0).rotating(), max_kv > 0);
    return all;
  };
  EXPECT_EQ(run(0), run(64));
}

// Greedy decode through Model::forward, returning each step's logits.
std::vector<std::vector<float>> decode(model::Model& model, kv::KvCache& cache, int32_t first,
                                       int steps) {
  std::vector<std::vector<float>> out;
  int32_t token = first;
  for (int i = 0; i < steps; ++i) {
    model::SequenceInput in{
        .tokens = std::span<const int32_t>(&token, 1), .cache = &cache, .all_logits = false};
    std::vector<float> logits =
        ops::to_device(model.forward(std::span<const model::SequenceInput>(&in, 1)), Device::cpu())
            .to_vector<float>();
    token = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(std::move(logits));
  }
  return out;
}

void snapshot_round_trip(model::Model& model, int64_t max_kv_size) {
  gen::GenerationOptions options;
  options.max_kv_size = max_kv_size;
  options.kv_block_size = 4;
  options.prefill_step_size = 6;
  std::shared_ptr<kv::KvCache> cache = gen::make_prompt_cache(model, options, 200);
  std::vector<int32_t> prompt{7, 1, 19, 250, 44, 3, 3, 90, 101, 64, 12, 5, 66, 31, 8};
  model::SequenceInput in{.tokens = prompt, .cache = cache.get(), .all_logits = false};
  model.forward(std::span<const model::SequenceInput>(&in, 1));
  decode(model, *cache, 42, 5);
  const int64_t at = cache->size();
  kv::KvSnapshot snap = cache->snapshot();
  std::vector<std::vector<float>> first = decode(model, *cache, 17, 12);
  // A chunk too, so a rotating buffer is re-linearized after the snapshot.
  std::vector<int32_t> chunk{4, 9, 77};
  model::SequenceInput cin{.tokens = chunk, .cache = cache.get(), .all_logits = false};
  std::vector<float> chunk_logits =
      ops::to_device(model.forward(std::span<const model::SequenceInput>(&cin, 1)), Device::cpu())
          .to_vector<float>();
  for (int round = 0; round < 2; ++round) {
    cache->restore(snap);
    EXPECT_EQ(cache->size(), at);
    std::vector<std::vector<float>> again = decode(model, *cache, 17, 12);
    ASSERT_EQ(again.size(), first.size());
    for (size_t i = 0; i < first.size(); ++i)
      ASSERT_EQ(again[i], first[i]) << "round " << round << " step " << i;  // bit-identical
    model::SequenceInput cin2{chunk, cache.get(), false};
    EXPECT_EQ(ops::to_device(model.forward(std::span<const model::SequenceInput>(&cin2, 1)),
                             Device::cpu())
                  .to_vector<float>(),
              chunk_logits);
  }
}

TEST_P(RotatingModel, SnapshotRestoreIsBitExact) {
  {
    SCOPED_TRACE("standard cache");
    auto model = model::load_model(model_dir("qwen3-plain"), on(GetParam()));
    snapshot_round_trip(*model, 0);
    SCOPED_TRACE("rotating cache, max_kv_size 8 (wraps)");
    snapshot_round_trip(*model, 8);
  }
  {
    SCOPED_TRACE("mistral-sliding: window rings and nothing else");
    auto model = model::load_model(model_dir("mistral-sliding"), on(GetParam()));
    snapshot_round_trip(*model, 0);
  }
  {
    SCOPED_TRACE("qwen2: one standard layer, one window ring, then max_kv_size rings");
    auto model = model::load_model(model_dir("qwen2-bias-yarn-sliding"), on(GetParam()));
    snapshot_round_trip(*model, 0);
    snapshot_round_trip(*model, 10);
  }
}

TEST_P(RotatingModel, BatchGenerateWithRingsMatchesSingleSequences) {
  // A ragged batch of ring caches (different offsets, so different ring positions) decodes each
  // sequence as generate does alone; the fixture's prompt gives transformers' tokens.
  nlohmann::json g = io::read_json_file(model_dir("mistral-sliding") / "golden.json");
  auto model = model::load_model(model_dir("mistral-sliding"), on(GetParam()));
  std::vector<int32_t> prompt = g["prompt_ids"].get<std::vector<int32_t>>();
  std::vector<int32_t> expected = g["greedy_ids"].get<std::vector<int32_t>>();
  std::vector<int32_t> other{3, 99, 150, 7, 260, 12, 44, 45, 46, 301, 2};
  gen::GenerationOptions options;
  options.max_tokens = int(expected.size());
  options.kv_block_size = 4;
  options.prefill_step_size = 5;
  gen::BatchResult r = gen::batch_generate(*model, {prompt, other}, options);
  EXPECT_EQ(r.tokens[0], expected);
  gen::TokenGenerator alone(*model, other, options);
  std::vector<int32_t> want;
  while (auto s = alone.next()) want.push_back(s->token);
  EXPECT_EQ(r.tokens[1], want);
}

TEST(CachePolicies, FollowMlxLmMakePromptCache) {
  auto qwen2 = model::load_model(model_dir("qwen2-bias-yarn-sliding"));  // layers: full, window 9
  gen::GenerationOptions options;
  std::vector<kv::CachePolicy> p = gen::cache_policies(*qwen2, options);
  EXPECT_EQ(p, (std::vector<kv::CachePolicy>{{0, 0}, {9, 0}}));
  options.max_kv_size = 50;
  p = gen::cache_policies(*qwen2, options);
  EXPECT_EQ(p, (std::vector<kv::CachePolicy>{{50, 4}, {9, 0}}));
  options.rotating_window_layers = false;
  p = gen::cache_policies(*qwen2, options);
  EXPECT_EQ(p, (std::vector<kv::CachePolicy>{{50, 4}, {0, 0}}));
  for (int64_t bad : {-1, 3, 4}) {
    options.max_kv_size = bad;
    EXPECT_THROW(gen::cache_policies(*qwen2, options), Error) << bad;
  }
  options.max_kv_size = 5;
  std::shared_ptr<kv::KvCache> cache = gen::make_prompt_cache(*qwen2, options, 100);
  EXPECT_EQ(cache->num_groups(), 2);
  EXPECT_EQ(cache->policy(0), (kv::CachePolicy{5, 4}));
}

INSTANTIATE_TEST_SUITE_P(Devices, RotatingModel, testing::Values(Device::cpu(), Device::cuda(0)),
                         [](const testing::TestParamInfo<Device>& info) {
                           return info.param.is_cpu() ? std::string("cpu") : std::string("cuda");
                         });

}  // namespace
}  // namespace hearth
