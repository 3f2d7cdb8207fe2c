// Unit tests of the tokenizer on small hand-written tokenizer.json files (BPE options that the
// real files do not exercise, tokenizer_config.json handling, streaming details, threads) and
// on the special-token metadata of the real packages.
#include <gtest/gtest.h>

#include <thread>

#include "core/error.h"
#include "text/tokenizer.h"
#include "text/unicode.h"
#include "tokenizer_test_util.h"

namespace hearth::text {
namespace {

using testing::fresh_dir;
using testing::tiny_bpe;
using testing::write_file;
using Ids = std::vector<int32_t>;

Tokenizer load(const nlohmann::json& tokenizer, const std::string& name,
               const nlohmann::json& config = nullptr) {
  const auto dir = fresh_dir(name);
  write_file(dir / "tokenizer.json", tokenizer.dump());
  if (!config.is_null()) write_file(dir / "tokenizer_config.json", config.dump());
  return Tokenizer::from_dir(dir);
}

TEST(TokenizerBpe, MergesAsStringsOrPairs) {
  auto j = tiny_bpe();
  const Tokenizer a = load(j, "strings");
  j["model"]["merges"] = nlohmann::json::array(
      {nlohmann::json::array({"a", "b"}), nlohmann::json::array({"ab", "c"})});
  const Tokenizer b = load(j, "pairs");
  EXPECT_EQ(a.encode("abcab<s>c"), (Ids{4, 3, 6, 2}));
  EXPECT_EQ(b.encode("abcab<s>c"), a.encode("abcab<s>c"));
  EXPECT_EQ(a.decode(Ids{4, 3, 6, 2}), "abcab<s>c");
  EXPECT_EQ(a.decode(Ids{4, 3, 6, 2}, true), "abcabc");
  EXPECT_TRUE(a.encode("").empty());
}

TEST(TokenizerBpe, IgnoreMerges) {
  auto j = tiny_bpe();
  j["model"]["merges"] = {"b c"};
  j["model"]["vocab"]["bc"] = 7;
  EXPECT_EQ(load(j, "merges").encode("abc"), (Ids{0, 7}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(load(j, "ignore").encode("abc"), (Ids{4}));  // a whole word in the vocab wins
}

TEST(TokenizerBpe, SubwordPrefixAndSuffix) {
  auto j = tiny_bpe();
  j["pre_tokenizer"] = {{"type", "WhitespaceSplit"}};
  j["decoder"] = nullptr;
  j["model"]["continuing_subword_prefix"] = "##";
  j["model"]["end_of_word_suffix"] = "</w>";
  j["model"]["vocab"] = {{"a", 0},  {"##b", 1},     {"##c</w>", 2},
                         {"ab", 3}, {"abc</w>", 4}, {"<s>", 6}};
  j["model"]["merges"] = {"a ##b", "ab ##c</w>"};
  const Tokenizer t = load(j, "affixes");
  EXPECT_EQ(t.encode("abc abc"), (Ids{4, 4}));
  EXPECT_EQ(t.encode("ab"), (Ids{0}));  // "##b</w>" is unknown and there is no unk token
}

TEST(TokenizerBpe, ByteFallbackAndFuseUnk) {
  auto j = tiny_bpe();
  j["pre_tokenizer"] = nullptr;
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders", {{{"type", "ByteFallback"}}, {{"type", "Fuse"}}}}};
  j["model"]["vocab"] = {{"<unk>", 0}, {"<0xC3>", 1}, {"<0xA9>", 2}, {"a", 3}, {"<s>", 6}};
  j["model"]["merges"] = nlohmann::json::array();
  j["model"]["unk_token"] = "<unk>";
  j["model"]["byte_fallback"] = true;
  j["model"]["fuse_unk"] = true;
  const Tokenizer fused = load(j, "fuse");
  EXPECT_EQ(fused.encode("aéa"), (Ids{3, 1, 2, 3}));
  EXPECT_EQ(fused.encode("añña"), (Ids{3, 0, 3}));  // 0xB1 is missing: unk, fused
  EXPECT_EQ(fused.decode(Ids{3, 1, 2, 3}), "aéa");
  EXPECT_EQ(fused.decode(Ids{1, 3}),
            "\xEF\xBF\xBD"
            "a");  // an invalid byte run: one U+FFFD per byte
  j["model"]["fuse_unk"] = false;
  EXPECT_EQ(load(j, "nofuse").encode("añña"), (Ids{3, 0, 0, 3}));
}

TEST(TokenizerBpe, InvalidUtf8InputIsRepaired) {
  const Tokenizer t = load(tiny_bpe(), "utf8");
  const std::string bad = "ab\xC3(c\xFF";
  EXPECT_EQ(t.encode(bad), t.encode(unicode::from_utf8_lossy(bad)));
}

TEST(TokenizerBpe, ConcurrentEncodeIsConsistent) {
  const Tokenizer t = load(tiny_bpe(), "threads");
  std::string text;
  for (int i = 0; i < 2000; ++i) text += (i % 3 ? "abc " : "ab cab ") + std::to_string(i) + " ";
  const Ids want = t.encode(text);
  std::vector<std::thread> threads;
  std::vector<Ids> got(4);
  for (size_t i = 0; i < got.size(); ++i) threads.emplace_back([&, i] { got[i] = t.encode(text); });
  for (auto& th : threads) th.join();
  for (const auto& g : got) EXPECT_EQ(g, want);
}

TEST(TokenizerStream, ByteLevelHoldsIncompleteCharacters) {
  auto j = tiny_bpe();
  j["model"]["vocab"]["Ã"] = 8;  // byte 0xC3
  j["model"]["vocab"]["©"] = 9;  // byte 0xA9
  const Tokenizer t = load(j, "stream");
  auto d = t.make_detokenizer();
  d->add_token(0);
  EXPECT_EQ(d->take_text(), "a");
  d->add_token(8);
  EXPECT_EQ(d->take_text(), "");
  d->add_token(9);
  EXPECT_EQ(d->take_text(), "é");
  d->add_token(8);
  EXPECT_EQ(d->finalize(), "\xEF\xBF\xBD");
  d->reset();
  d->add_token(1);
  EXPECT_EQ(d->finalize(), "b");
}

TEST(TokenizerConfig, SpecialTokensAndTemplates) {
  const nlohmann::json config = {
      {"bos_token", {{"__type", "AddedToken"}, {"content", "<s>"}, {"special", true}}},
      {"eos_token", "</s>"},
      {"pad_token", nullptr},
      {"added_tokens_decoder",
       {{"7", {{"content", "</s>"}, {"special", true}, {"normalized", false}}},
        {"6", {{"content", "<s>"}, {"special", true}, {"normalized", false}}}}},
      {"chat_template",
       {{{"name", "default"}, {"template", "{{ bos_token }}"}},
        {{"name", "tool_use"}, {"template", "{{ eos_token }}"}}}},
  };
  const Tokenizer t = load(tiny_bpe(), "config", config);
  EXPECT_EQ(t.bos_token_id(), 6);
  EXPECT_EQ(t.eos_token_ids(), (Ids{7}));
  EXPECT_TRUE(t.is_special(7));
  EXPECT_EQ(t.token_to_id("</s>"), 7);
  EXPECT_EQ(t.encode("a</s>"), (Ids{0, 7}));
  EXPECT_EQ(t.special_tokens(), (nlohmann::json{{"bos_token", "<s>"}, {"eos_token", "</s>"}}));
  EXPECT_TRUE(t.has_chat_template());
  EXPECT_FALSE(load(tiny_bpe(), "noconfig").has_chat_template());
}

TEST(TokenizerConfig, ChatTemplateFile) {
  const auto dir = fresh_dir("jinja");
  write_file(dir / "tokenizer.json", tiny_bpe().dump());
  write_file(dir / "chat_template.jinja", "{{ messages }}");
  EXPECT_TRUE(Tokenizer::from_dir(dir).has_chat_template());
}

TEST(TokenizerConfig, AddBosAndEosFlagsDoNotOverrideTokenizerJson) {
  // transformers 5.17 drops add_bos_token / add_eos_token when tokenizer.json exists.
  auto j = tiny_bpe();
  j["model"]["vocab"]["</s>"] = 7;
  const nlohmann::json config = {{"tokenizer_class", "LlamaTokenizerFast"},
                                 {"bos_token", "<s>"},
                                 {"eos_token", "</s>"},
                                 {"add_bos_token", true},
                                 {"add_eos_token", true}};
  EXPECT_EQ(load(j, "llama", config).encode("ab"), (Ids{3}));
}

TEST(TokenizerConfig, ModelSpecificSpecialTokensAndLegacyMap) {
  const auto dir = fresh_dir("named");
  write_file(dir / "tokenizer.json", tiny_bpe().dump());
  write_file(
      dir / "tokenizer_config.json",
      R"({"bos_token": "<s>", "image_token": "<img>", "add_bos_token": true, "pad_token": null,
                 "extra_special_tokens": {"boi_token": "<boi>"}, "additional_special_tokens": ["<x>"]})");
  write_file(dir / "special_tokens_map.json",
             R"({"eos_token": {"content": "</s>"}, "bos_token": "<b>"})");
  const Tokenizer t = Tokenizer::from_dir(dir);
  EXPECT_EQ(t.special_tokens(), (nlohmann::json{{"bos_token", "<b>"},
                                                {"eos_token", "</s>"},
                                                {"image_token", "<img>"},
                                                {"boi_token", "<boi>"}}));
}

TEST(TokenizerConfig, TemplateFilesReplaceConfigTemplates) {
  const auto dir = fresh_dir("files");
  write_file(dir / "tokenizer.json", tiny_bpe().dump());
  write_file(dir / "tokenizer_config.json", R"({"chat_template": "config"})");
  std::filesystem::create_directories(dir / "additional_chat_templates");
  write_file(dir / "additional_chat_templates" / "tool_use.jinja", "tools");
  const Tokenizer t = Tokenizer::from_dir(dir);
  EXPECT_TRUE(t.has_chat_template());
}

struct PackageFacts {
  const char* name;
  std::optional<int32_t> bos;
  Ids eos;
  bool chat_template;
  int32_t special_id;
};

TEST(TokenizerPackages, SpecialTokenMetadata) {
  const PackageFacts facts[] = {
      {"qwen3", std::nullopt, {151645}, true, 151644},
      {"qwen2_5", std::nullopt, {151645}, true, 151643},
      {"llama3", 128000, {128001}, true, 128000},
      {"llama3_1", 128000, {128009}, true, 128009},
      {"gemma3", 2, {106}, true, 106},
      {"gpt2", 50256, {50256}, false, 50256},
      {"llama2", 1, {2}, false, 1},  // this package ships no chat template
  };
  for (const auto& f : facts) {
    const auto dir = testing::package_dir(f.name);
    if (dir.empty()) continue;
    const Tokenizer t = Tokenizer::from_dir(dir);
    EXPECT_EQ(t.bos_token_id(), f.bos) << f.name;
    EXPECT_EQ(t.eos_token_ids(), f.eos) << f.name;
    EXPECT_EQ(t.has_chat_template(), f.chat_template) << f.name;
    EXPECT_TRUE(t.is_special(f.special_id)) << f.name;
    EXPECT_FALSE(t.is_special(100)) << f.name;
    const auto specials = t.special_tokens();
    if (f.bos) EXPECT_EQ(t.token_to_id(specials["bos_token"].get<std::string>()), f.bos) << f.name;
    EXPECT_EQ(t.token_to_id(specials["eos_token"].get<std::string>()), f.eos[0]) << f.name;
  }
}

}  // namespace
}  // namespace hearth::text
