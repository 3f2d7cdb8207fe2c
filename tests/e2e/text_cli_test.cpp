// `hearth tokenize` and `hearth chat-template` against the HF outputs recorded for the bundled
// default model (tests/data/default_model_golden.json, written by transformers on the GPU machine),
// and `hearth generate` end to end on that model.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

struct CliRun {
  int status;
  std::string out, err;
};

CliRun hearth(const std::string& args) {
  fs::path tmp = fs::temp_directory_path() / ("hearth-text-e2e-" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  std::string cmd = std::string(HEARTH_BINARY) + " " + args + " </dev/null >" +
                    (tmp / "out").string() + " 2>" + (tmp / "err").string();
  int raw = std::system(cmd.c_str());
  CliRun r{WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, slurp(tmp / "out"), slurp(tmp / "err")};
  fs::remove_all(tmp);
  return r;
}

nlohmann::json golden() {
  return nlohmann::json::parse(slurp(fs::path(HEARTH_TEST_DATA_DIR) / "default_model_golden.json"));
}

std::string join_ids(const nlohmann::json& ids) {
  std::string s;
  for (const auto& id : ids) s += (s.empty() ? "" : " ") + std::to_string(id.get<int>());
  return s;
}

std::string model_flag() {
  return " --model '" + (fs::path(HEARTH_SOURCE_DIR) / "models" / "default").string() + "'";
}

TEST(CliTokenize, EncodesAndDecodesLikeTransformers) {
  const nlohmann::json g = golden();
  for (const auto& c : g["cases"]) {
    if (c["kind"] != "text") continue;
    CliRun r = hearth("tokenize" + model_flag() + " -p '" + c["prompt"].get<std::string>() + "'");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, join_ids(c["prompt_ids"]) + "\n") << c["name"];
    CliRun d =
        hearth("tokenize" + model_flag() + " --decode -p '" + join_ids(c["greedy_ids"]) + "'");
    ASSERT_EQ(d.status, 0) << d.err;
    EXPECT_EQ(d.out, c["greedy_text"].get<std::string>() + "\n") << c["name"];
  }
  CliRun bad = hearth("tokenize" + model_flag() + " --decode -p '1 two 3'");
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("'two'"), std::string::npos);
}

TEST(CliChatTemplate, RendersLikeTransformers) {
  const nlohmann::json g = golden();
  for (const auto& c : g["cases"]) {
    if (c["kind"] != "chat") continue;
    fs::path messages = fs::temp_directory_path() / ("hearth-msgs-" + std::to_string(::getpid()));
    std::ofstream(messages) << c["messages"].dump();
    CliRun r = hearth("chat-template" + model_flag() + " --messages '" + messages.string() + "'");
    fs::remove(messages);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, c["rendered_prompt"].get<std::string>());
  }
  CliRun missing = hearth("chat-template" + model_flag() + " --messages /nonexistent.json");
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("/nonexistent.json"), std::string::npos);
}

TEST(CliGenerate, DefaultModelChatReplyMatchesTransformers) {
  const nlohmann::json g = golden();
  for (const auto& c : g["cases"]) {
    if (c["kind"] != "chat") continue;
    // mlx-lm semantics: the prompt goes through the chat template. Generation stops at an EOS id
    // (generation_config.json: <|endoftext|>, <|im_end|>) or after max_tokens.
    std::vector<int> ids = c["greedy_ids"].get<std::vector<int>>();
    size_t stop = ids.size();
    for (size_t i = 0; i < ids.size(); ++i)
      if (ids[i] == 0 || ids[i] == 2) {
        stop = i;
        break;
      }
    CliRun r = hearth("generate" + model_flag() + " -p '" +
                      c["messages"].back()["content"].get<std::string>() + "' -m " +
                      std::to_string(ids.size()) + " --verbose False");
    ASSERT_EQ(r.status, 0) << r.err;
    CliRun decoded =
        hearth("tokenize" + model_flag() + " --decode -p '" +
               join_ids(nlohmann::json(std::vector<int>(ids.begin(), ids.begin() + stop))) + "'");
    EXPECT_EQ(r.out, decoded.out) << c["name"];
  }
}

TEST(CliGenerate, DefaultModelIsUsedWithoutModelFlag) {
  CliRun r = hearth("generate -p 'In the beginning' --ignore-chat-template -m 8 --verbose False");
  ASSERT_EQ(r.status, 0) << r.err;
  auto c = golden()["cases"][0];
  ASSERT_EQ(c["name"], "genesis");
  EXPECT_EQ(r.out.rfind(" of the reign of David", 0), 0u) << r.out;
}

}  // namespace
