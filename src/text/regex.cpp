// PCRE2 wrapper (see regex.h). Patterns from tokenizer.json are written for Oniguruma; PCRE2 with
// PCRE2_UTF | PCRE2_UCP accepts the same syntax and splits identically on the patterns real
// tokenizers use (checked against HF on the reference corpus, which includes U+0085, U+2028,
// NBSP and the other White_Space characters).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/regex.h"

#include <pcre2.h>

#include "core/error.h"
#include "text/unicode.h"

namespace hearth::text {

struct Regex::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof buffer);
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

Regex Regex::compile(std::string_view pattern, const std::string& where) {
  const std::string translated(pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error, &offset, nullptr);
  if (code == nullptr) {
    fail(ErrorCode::format, "{}: bad regex '{}' at offset {}: {}", where, pattern, offset,
         pcre2_message(error));
  }
  // JIT is an optimization only: when unavailable, pcre2_match interprets the pattern.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  auto holder = std::make_shared<Code>();
  holder->code = code;
  return Regex(std::move(holder));
}

Regex Regex::literal(std::string_view literal, const std::string& where) {
  std::string quoted = "\\Q";
  // \Q...\E cannot contain \E itself; split it out.
  for (size_t i = 0; i < literal.size(); ++i) {
    if (literal[i] == '\\' && i + 1 < literal.size() && literal[i + 1] == 'E') {
      quoted += "\\E\\\\E\\Q";
      ++i;
    } else {
      quoted += literal[i];
    }
  }
  quoted += "\\E";
  return compile(quoted, where);
}

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_->code, nullptr);
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos <= text.size()) {
    const int rc =
        pcre2_match(code_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      fail(ErrorCode::internal, "regex match failed: {}", pcre2_message(rc));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t start = ov[0], end = ov[1];
    out.emplace_back(start, end);
    if (end > start) {
      pos = end;
    } else {
      if (end >= text.size()) break;
      pos = end + unicode::sequence_length(static_cast<unsigned char>(text[end]));
    }
  }
  pcre2_match_data_free(md);
}

}  // namespace hearth::text

namespace hearth::text {

Pattern Pattern::from_json(const nlohmann::json& j, const std::string& where) {
  if (j.is_object() && j.size() == 1) {
    if (const auto it = j.find("String"); it != j.end() && it->is_string()) {
      return from_string(it->get<std::string>());
    }
    if (const auto it = j.find("Regex"); it != j.end() && it->is_string()) {
      Pattern p;
      p.regex_ = Regex::compile(it->get<std::string>(), where);
      return p;
    }
  }
  fail(ErrorCode::format, "{}: pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}, got {}",
       where, j.dump());
}

Pattern Pattern::from_string(std::string literal) {
  Pattern p;
  if (literal.empty()) p.regex_ = Regex::literal("", "pattern");
  p.literal_ = std::move(literal);
  return p;
}

void Pattern::find_matches(std::string_view text, std::vector<PatternRange>& out) const {
  out.clear();
  if (text.empty()) {
    out.push_back({0, 0, false});
    return;
  }
  size_t prev = 0;
  const auto add = [&](size_t start, size_t end) {
    if (prev != start) out.push_back({prev, start, false});
    out.push_back({start, end, true});
    prev = end;
  };
  if (regex_) {
    std::vector<std::pair<size_t, size_t>> matches;
    regex_->find_all(text, matches);
    for (const auto& [s, e] : matches) add(s, e);
  } else {
    for (size_t pos = text.find(literal_); pos != std::string_view::npos;
         pos = text.find(literal_, pos + literal_.size())) {
      add(pos, pos + literal_.size());
    }
  }
  if (prev != text.size()) out.push_back({prev, text.size(), false});
}

std::string Pattern::replace_all(std::string_view text, std::string_view content) const {
  std::vector<PatternRange> ranges;
  find_matches(text, ranges);
  std::string out;
  out.reserve(text.size());
  for (const auto& r : ranges) {
    if (r.is_match) {
      out.append(content);
    } else {
      out.append(text.substr(r.start, r.end - r.start));
    }
  }
  return out;
}

}  // namespace hearth::text
