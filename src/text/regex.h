// PCRE2 (UTF + UCP, JIT) regular expressions with Oniguruma-compatible find-all semantics, which is
// how HF `tokenizers` runs its Split / Replace patterns.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hearth::text {

class Regex {
 public:
  // Compiles `pattern`; a bad pattern is a `format` error naming `where` (file and key).
  static Regex compile(std::string_view pattern, const std::string& where);
  // A regex matching `literal` exactly.
  static Regex literal(std::string_view literal, const std::string& where);

  // All non-overlapping matches [start, end) in `text` (valid UTF-8), leftmost first. An empty
  // match is reported once and the search resumes one character further, as Oniguruma does.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  struct Code;
  explicit Regex(std::shared_ptr<const Code> code) : code_(std::move(code)) {}
  std::shared_ptr<const Code> code_;
};

// Matches of a pattern as (start, end, is_match) ranges that tile the whole text, as HF's
// Pattern::find_matches returns them; an empty text gives one empty non-match.
struct PatternRange {
  size_t start, end;
  bool is_match;
};

// A Split / Replace pattern of tokenizer.json: {"String": "..."} (matched literally) or
// {"Regex": "..."}.
class Pattern {
 public:
  static Pattern from_json(const nlohmann::json& j, const std::string& where);
  static Pattern from_string(std::string literal);

  // Tiles `text` into match / non-match ranges (HF's Pattern::find_matches).
  void find_matches(std::string_view text, std::vector<PatternRange>& out) const;
  // Replaces every match with `content`.
  std::string replace_all(std::string_view text, std::string_view content) const;

 private:
  std::string literal_;         // used when regex_ is empty
  std::optional<Regex> regex_;  // a regex, or an empty literal (matches everywhere)
};

}  // namespace hearth::text
