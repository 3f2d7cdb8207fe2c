// Bad input: unknown component types, malformed JSON and missing files must raise a clear
// hearth::Error naming the file and the key, never crash.
#include <gtest/gtest.h>

#include <random>

#include "core/error.h"
#include "text/tokenizer.h"
#include "tokenizer_test_util.h"

namespace hearth::text {
namespace {

using testing::fresh_dir;
using testing::tiny_bpe;
using testing::write_file;

// Loads `tokenizer` from a fresh folder and returns the error it raises.
Error load_error(const nlohmann::json& tokenizer, const std::string& name) {
  const auto dir = fresh_dir(name);
  write_file(dir / "tokenizer.json", tokenizer.dump());
  try {
    Tokenizer::from_dir(dir);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << name << ": loading did not fail";
  return Error(ErrorCode::internal, "");
}

void expect_mentions(const Error& e, std::initializer_list<std::string> parts) {
  for (const auto& p : parts) {
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
        << "'" << e.what() << "' lacks '" << p << "'";
  }
}

TEST(TokenizerErrors, MissingTokenizerJson) {
  const auto dir = fresh_dir("missing");
  try {
    Tokenizer::from_dir(dir);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::not_found);
    expect_mentions(e, {(dir / "tokenizer.json").string()});
  }
}

TEST(TokenizerErrors, MalformedJson) {
  const auto dir = fresh_dir("malformed");
  write_file(dir / "tokenizer.json", R"({"version": "1.0", "model": {"type": "BPE", )");
  try {
    Tokenizer::from_dir(dir);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::format);
    expect_mentions(e, {"tokenizer.json", "malformed JSON"});
  }
}

TEST(TokenizerErrors, NotAnObject) {
  const Error e = load_error(nlohmann::json::array({1, 2}), "array");
  EXPECT_EQ(e.code(), ErrorCode::format);
  expect_mentions(e, {"tokenizer.json", "object"});
}

TEST(TokenizerErrors, UnknownModelType) {
  auto j = tiny_bpe();
  j["model"]["type"] = "Foo";
  const Error e = load_error(j, "model");
  EXPECT_EQ(e.code(), ErrorCode::format);
  expect_mentions(e, {"tokenizer.json", "unknown model type 'Foo'", "at model"});
}

TEST(TokenizerErrors, MissingModel) {
  auto j = tiny_bpe();
  j.erase("model");
  expect_mentions(load_error(j, "nomodel"), {"tokenizer.json", "model"});
}

TEST(TokenizerErrors, UnknownPreTokenizerInSequence) {
  auto j = tiny_bpe();
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers", {{{"type", "Digits"}}, {{"type", "Whitespace"}}, {{"type", "Foo"}}}}};
  const Error e = load_error(j, "pre");
  EXPECT_EQ(e.code(), ErrorCode::format);
  expect_mentions(
      e, {"tokenizer.json", "unknown pre_tokenizer type 'Foo'", "pre_tokenizer.pretokenizers[2]"});
}

TEST(TokenizerErrors, UnknownNormalizerDecoderAndProcessor) {
  auto j = tiny_bpe();
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}, {{"type", "Bar"}}}}};
  expect_mentions(load_error(j, "norm"),
                  {"unknown normalizer type 'Bar'", "normalizer.normalizers[1]"});
  j = tiny_bpe();
  j["decoder"] = {{"type", "Baz"}};
  expect_mentions(load_error(j, "dec"), {"unknown decoder type 'Baz'", "at decoder"});
  j = tiny_bpe();
  j["post_processor"] = {{"type", "Qux"}};
  expect_mentions(load_error(j, "post"),
                  {"unknown post_processor type 'Qux'", "at post_processor"});
}

TEST(TokenizerErrors, MissingTypeKey) {
  auto j = tiny_bpe();
  j["pre_tokenizer"] = {{"add_prefix_space", true}};
  expect_mentions(load_error(j, "notype"), {"missing key 'type'", "at pre_tokenizer"});
}

TEST(TokenizerErrors, BadMerges) {
  auto j = tiny_bpe();
  j["model"]["merges"] = {"a b", "x y"};
  expect_mentions(load_error(j, "oov"), {"merge token 'x' is not in the vocab", "model.merges[1]"});
  j["model"]["merges"] = {"a b c"};
  expect_mentions(load_error(j, "three"), {"bad merge 'a b c'", "model.merges[0]"});
  j["model"]["merges"] = {{"a"}};
  expect_mentions(load_error(j, "pair"), {"model.merges[0]"});
  j["model"]["merges"] = "a b";
  expect_mentions(load_error(j, "string"), {"model.merges"});
}

TEST(TokenizerErrors, BadVocabAndValues) {
  auto j = tiny_bpe();
  j["model"]["vocab"]["a"] = "zero";
  expect_mentions(load_error(j, "vocab"), {"id of 'a' is not an integer", "model.vocab"});
  j = tiny_bpe();
  j["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  expect_mentions(load_error(j, "regex"), {"bad regex '(unclosed'", "pre_tokenizer.pattern"});
  j["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Sideways"}};
  expect_mentions(load_error(j, "behavior"), {"unknown split behavior 'Sideways'"});
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "ab"}};
  expect_mentions(load_error(j, "char"), {"'replacement' must be a single character"});
  j = tiny_bpe();
  j["added_tokens"][0].erase("content");
  expect_mentions(load_error(j, "added"), {"missing key 'content'", "added_tokens[0]"});
  j = tiny_bpe();
  j["version"] = "2.0";
  expect_mentions(load_error(j, "version"), {"unknown tokenizer version", "at version"});
}

TEST(TokenizerErrors, WrongJsonTypesDeepInside) {
  auto j = tiny_bpe();
  j["post_processor"] = nlohmann::json::parse(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "special_tokens": {"<s>": {"id": "<s>", "ids": ["one"], "tokens": ["<s>"]}}})");
  const Error e = load_error(j, "deep");
  EXPECT_EQ(e.code(), ErrorCode::format);
  expect_mentions(e, {"tokenizer.json"});
}

TEST(TokenizerErrors, BadTokenizerConfig) {
  const auto dir = fresh_dir("config");
  write_file(dir / "tokenizer.json", tiny_bpe().dump());
  write_file(dir / "tokenizer_config.json", "{ not json");
  try {
    Tokenizer::from_dir(dir);
    FAIL() << "no error";
  } catch (const Error& e) {
    expect_mentions(e, {(dir / "tokenizer_config.json").string(), "malformed JSON"});
  }
  write_file(dir / "tokenizer_config.json", R"({"chat_template": 42})");
  try {
    Tokenizer::from_dir(dir);
    FAIL() << "no error";
  } catch (const Error& e) {
    expect_mentions(e, {"tokenizer_config.json", "at chat_template"});
  }
  write_file(dir / "tokenizer_config.json", R"({"bos_token": 7})");
  EXPECT_THROW(Tokenizer::from_dir(dir), Error);
}

}  // namespace
}  // namespace hearth::text

namespace hearth::text {
namespace {

// Replaces one random node of `j` by a random value.
void mutate(nlohmann::json& j, std::mt19937& rng) {
  nlohmann::json* node = &j;
  while ((node->is_object() || node->is_array()) && !node->empty() && rng() % 3 != 0) {
    auto it = node->begin();
    std::advance(it, rng() % node->size());
    node = &*it;
  }
  static const nlohmann::json kValues[] = {nullptr,
                                           0,
                                           -1,
                                           1.5,
                                           "",
                                           "Foo",
                                           "a b",
                                           true,
                                           nlohmann::json::array(),
                                           nlohmann::json::object(),
                                           nlohmann::json::array({"a", "b"}),
                                           nlohmann::json::object({{"type", "Sequence"}}),
                                           nlohmann::json::object({{"String", " "}}),
                                           nlohmann::json::object({{"Regex", "("}})};
  *node = kValues[rng() % std::size(kValues)];
}

// Randomly damaged files load or fail with hearth::Error; nothing else escapes and nothing crashes.
TEST(TokenizerErrors, RandomlyDamagedFilesFailCleanly) {
  std::mt19937 rng(1234);
  const auto dir = testing::fresh_dir("fuzz");
  int loaded = 0;
  for (int i = 0; i < 600; ++i) {
    auto j = testing::tiny_bpe();
    j["normalizer"] = nlohmann::json::parse(R"({"type": "Sequence", "normalizers": [{"type": "NFC"},
        {"type": "Replace", "pattern": {"String": "a"}, "content": "b"}]})");
    j["post_processor"] = nlohmann::json::parse(R"({"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [6], "tokens": ["<s>"]}}})");
    for (int k = 0; k < 1 + static_cast<int>(rng() % 3); ++k) mutate(j, rng);
    testing::write_file(dir / "tokenizer.json", j.dump());
    try {
      const Tokenizer t = Tokenizer::from_dir(dir);
      const auto ids = t.encode("abc ab <s> a\xC3\xA9", true);
      (void)t.decode(ids, true);
      auto d = t.make_detokenizer();
      for (const int32_t id : ids) d->add_token(id);
      (void)d->finalize();
      ++loaded;
    } catch (const Error&) {
    }
  }
  EXPECT_GT(loaded, 0);
}

}  // namespace
}  // namespace hearth::text
