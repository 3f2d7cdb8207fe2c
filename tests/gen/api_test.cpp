// The public API in include/hearth/hearth.h, on the bundled default model, against the HF greedy
// continuation recorded for it.
#include "hearth/hearth.h"

#include <gtest/gtest.h>

#include "io/json_file.h"

namespace hearth {
namespace {

std::string default_model() {
  return std::string(HEARTH_SOURCE_DIR) + "/models/default";
}

TEST(PublicApi, LoadGenerateAndStream) {
  auto [model, tokenizer] = load(default_model());
  nlohmann::json g =
      io::read_json_file(std::string(HEARTH_TEST_DATA_DIR) + "/default_model_golden.json");
  const nlohmann::json& c = g["cases"][0];
  ASSERT_EQ(c["prompt"], "In the beginning");
  GenerationOptions options;
  options.max_tokens = 16;
  std::vector<int32_t> expected = c["greedy_ids"].get<std::vector<int32_t>>();
  expected.resize(16);
  std::string text = generate(*model, tokenizer, "In the beginning", options);
  EXPECT_EQ(text, tokenizer.decode(expected));

  std::string streamed;
  int responses = 0;
  std::optional<std::string> finish;
  stream_generate(*model, tokenizer, "In the beginning", options, [&](const GenerationResponse& r) {
    streamed += r.text;
    ++responses;
    EXPECT_EQ(r.prompt_tokens, 4);
    EXPECT_EQ(r.logprobs().size(), size_t(model->config().vocab_size));
    finish = r.finish_reason;
    return true;
  });
  EXPECT_EQ(streamed, text);
  EXPECT_EQ(responses, 16);
  EXPECT_EQ(finish, "length");

  int seen = 0;
  stream_generate(*model, tokenizer, "In the beginning", options, [&](const GenerationResponse&) {
    return ++seen < 3;  // stop early
  });
  EXPECT_EQ(seen, 3);
}

TEST(PublicApi, BadPathIsAClearError) {
  try {
    load("/no/such/model");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/no/such/model"), std::string::npos);
  }
}

}  // namespace
}  // namespace hearth
