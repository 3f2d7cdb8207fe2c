// Byte-exact comparison with HF's Rust `tokenizers` 0.23.2 (npm package, run by node) on the real
// tokenizer files of 7 model families and on variants of them that exercise the other components.
// The expectations are computed at test-asset time, not committed: tests/assets/fetch.sh runs
// tools/tokenizer_reference.js, which encodes tests/data/tokenizer/corpus.json (expanded with
// long and seeded random strings) with and without special tokens and decodes the ids with and
// without skip_special_tokens, plus random id sequences. Each test checks, for one tokenizer:
// encode ids, decode text, and the streaming detokenizer (pieces valid UTF-8, concatenation ==
// decode) on every case.
#include <gtest/gtest.h>

#include "core/error.h"
#include "text/tokenizer.h"
#include "text/unicode.h"
#include "tokenizer_test_util.h"

namespace hearth::text {
namespace {

using testing::kFetchHint;

const char* const kNames[] = {
    "qwen3",          "qwen2_5",          "llama3",
    "llama3_1",       "gemma3",           "gpt2",
    "llama2",         "gpt2-normalizers", "gpt2-nfkc-split",
    "gpt2-splits",    "gpt2-whitespace",  "gpt2-wssplit",
    "gpt2-added",     "llama2-metaspace", "llama2-metaspace-split",
    "llama2-unigram", "gpt2-wordpiece",   "gpt2-wordlevel",
};

std::string show(const std::string& s) {
  std::string out = nlohmann::json(s).dump();
  return out.size() > 160 ? out.substr(0, 160) + "...(" + std::to_string(s.size()) + " bytes)"
                          : out;
}

std::string first_difference(const std::vector<int32_t>& got, const std::vector<int32_t>& want) {
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  std::string msg = "sizes " + std::to_string(got.size()) + " vs " + std::to_string(want.size()) +
                    ", first difference at " + std::to_string(i) + ": got [";
  for (size_t k = i; k < std::min(got.size(), i + 8); ++k) msg += std::to_string(got[k]) + " ";
  msg += "] want [";
  for (size_t k = i; k < std::min(want.size(), i + 8); ++k) msg += std::to_string(want[k]) + " ";
  return msg + "]";
}

// Streams `ids` through a detokenizer; checks each piece and returns the concatenation.
std::string stream(const Tokenizer& tok, const std::vector<int32_t>& ids, const std::string& what) {
  auto detok = tok.make_detokenizer();
  std::string all;
  for (const int32_t id : ids) {
    detok->add_token(id);
    const std::string piece = detok->take_text();
    EXPECT_TRUE(unicode::is_valid_utf8(piece)) << what << ": broken UTF-8 piece " << show(piece);
    all += piece;
  }
  const std::string rest = detok->finalize();
  EXPECT_TRUE(unicode::is_valid_utf8(rest)) << what;
  return all + rest;
}

class Reference : public ::testing::TestWithParam<const char*> {};

TEST_P(Reference, EncodeDecodeStream) {
  const std::string name = GetParam();
  const auto ref_dir = testing::asset_dir() / "tokenizer-reference";
  const auto index_file = ref_dir / "index.json";
  ASSERT_TRUE(std::filesystem::exists(index_file))
      << index_file.string() << " is missing: " << kFetchHint;
  // Guard against references computed from an older corpus or script.
  const auto stamp = std::filesystem::last_write_time(index_file);
  for (const char* input : {"tests/data/tokenizer/corpus.json", "tools/tokenizer_reference.js",
                            "tools/tokenizer_variants.js"}) {
    const auto p = std::filesystem::path(HEARTH_SOURCE_DIR) / input;
    ASSERT_LE(std::filesystem::last_write_time(p), stamp)
        << p.string() << " changed after the references were computed: " << kFetchHint;
  }
  const auto index = testing::read_json(index_file);
  const nlohmann::json* entry = nullptr;
  for (const auto& e : index) {
    if (e["name"] == name) entry = &e;
  }
  ASSERT_NE(entry, nullptr) << name << " is not in " << index_file.string() << ": " << kFetchHint;
  const auto expected = testing::read_json((*entry)["expected"].get<std::string>());
  const Tokenizer tok = Tokenizer::from_dir((*entry)["dir"].get<std::string>());

  EXPECT_EQ(tok.vocab_size(), expected["vocab_size"].get<int64_t>());
  for (const auto& t : expected["tokens"]) {
    const auto id = t["id"].get<int32_t>();
    if (t["token"].is_null()) {
      EXPECT_FALSE(tok.id_to_token(id).has_value()) << name << " id " << id;
      continue;
    }
    EXPECT_EQ(tok.id_to_token(id).value_or("<none>"), t["token"].get<std::string>())
        << name << " id " << id;
    EXPECT_EQ(tok.token_to_id(t["token"].get<std::string>()).value_or(-1), t["back"].get<int32_t>())
        << name << " token " << t["token"];
  }

  size_t failures = 0;
  const auto& cases = expected["cases"];
  ASSERT_GT(cases.size(), 50u);
  for (size_t i = 0; i < cases.size() && failures < 10; ++i) {
    const auto& c = cases[i];
    const std::string text = c["text"];
    const std::string what = name + " case " + std::to_string(i) + " " + show(text);
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    const auto plain = c["ids_plain"].get<std::vector<int32_t>>();
    const auto got = tok.encode(text, true);
    const auto got_plain = tok.encode(text, false);
    if (got != ids) {
      ADD_FAILURE() << what << " (add_special_tokens): " << first_difference(got, ids);
      ++failures;
    }
    if (got_plain != plain) {
      ADD_FAILURE() << what << " (no special tokens): " << first_difference(got_plain, plain);
      ++failures;
    }
    if (tok.decode(ids, false) != c["decoded"]) {
      ADD_FAILURE() << what << ": decode " << show(tok.decode(ids, false)) << " want "
                    << show(c["decoded"]);
      ++failures;
    }
    EXPECT_EQ(tok.decode(ids, true), c["decoded_skip"].get<std::string>())
        << what << " (skip special)";
    EXPECT_EQ(tok.decode(plain, false), c["decoded_plain"].get<std::string>()) << what;
    EXPECT_EQ(stream(tok, ids, what), c["decoded"].get<std::string>()) << what << " (streamed)";
  }
  for (const auto& d : expected["decodes"]) {
    const auto ids = d["ids"].get<std::vector<int32_t>>();
    const std::string what = name + " decode " + d["ids"].dump();
    EXPECT_EQ(tok.decode(ids, false), d["text"].get<std::string>()) << what;
    EXPECT_EQ(tok.decode(ids, true), d["text_skip"].get<std::string>())
        << what << " (skip special)";
    EXPECT_EQ(stream(tok, ids, what), d["text"].get<std::string>()) << what << " (streamed)";
  }
}

INSTANTIATE_TEST_SUITE_P(HfTokenizers, Reference, ::testing::ValuesIn(kNames),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string n = info.param;
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace hearth::text
