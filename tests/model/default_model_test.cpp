// The bundled default model (models/default) against HF transformers: greedy continuations token
// for token and validation perplexity, from tests/data/default_model_golden.json (written by
// tools/train_default_model/train.py on the GPU machine, float32, CPU).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "gen/generate.h"
#include "io/json_file.h"
#include "model/model.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;

fs::path default_model() {
  return fs::path(HEARTH_SOURCE_DIR) / "models" / "default";
}
nlohmann::json golden() {
  return io::read_json_file(fs::path(HEARTH_TEST_DATA_DIR) / "default_model_golden.json");
}

TEST(DefaultModel, GreedyContinuationsMatchTransformers) {
  auto model = model::load_model(default_model());
  nlohmann::json g = golden();
  ASSERT_GE(g["cases"].size(), 4u);
  for (const auto& c : g["cases"]) {
    std::vector<int32_t> prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> expected = c["greedy_ids"].get<std::vector<int32_t>>();
    gen::GenerationOptions options;
    options.max_tokens = int(expected.size());
    gen::TokenGenerator generator(*model, prompt, options);
    std::vector<int32_t> got;
    while (auto step = generator.next()) got.push_back(step->token);
    EXPECT_EQ(got, expected) << c["name"];
  }
}

TEST(DefaultModel, ValidationPerplexityMatchesTransformers) {
  auto model = model::load_model(default_model());
  nlohmann::json p = golden()["perplexity"];
  double nll = 0;
  int64_t predicted = 0;
  for (const auto& item : p["items"]) {
    std::vector<int32_t> ids = item["ids"].get<std::vector<int32_t>>();
    auto pool = std::make_shared<kv::BlockPool>(model->kv_layout(32), 16);
    kv::KvCache cache(pool);
    model::SequenceInput in{.tokens = ids, .cache = &cache, .all_logits = true};
    Tensor logits = model->forward(std::span<const model::SequenceInput>(&in, 1));
    const int64_t V = logits.dim(1);
    std::vector<float> all = logits.to_vector<float>();
    for (size_t t = 0; t + 1 < ids.size(); ++t) {
      std::span<float> row(all.data() + t * V, size_t(V));
      gen::log_softmax_inplace(row);
      nll -= row[size_t(ids[t + 1])];
      ++predicted;
    }
  }
  double ppl = std::exp(nll / double(predicted));
  EXPECT_NEAR(nll / double(predicted), p["mean_nll"].get<double>(), 1e-4);
  EXPECT_NEAR(ppl, p["ppl"].get<double>(), 1e-3 * p["ppl"].get<double>());
}

}  // namespace
}  // namespace hearth
