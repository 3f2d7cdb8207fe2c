// tokenizer.json normalizers: Unicode normal forms, Lowercase, Replace, Prepend, Strip,
// StripAccents, BertNormalizer, ByteLevel and Sequence, with HF `tokenizers` semantics.
#include <utf8proc.h>

#include <cstdlib>

#include "core/error.h"
#include "text/components.h"
#include "text/regex.h"
#include "text/unicode.h"

namespace hearth::text {
namespace {

bool is_ascii(std::string_view s) {
  for (const char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

// Applies a utf8proc normal form; ASCII text is invariant under all four forms.
void unicode_normalize(std::string& text, int options) {
  if (is_ascii(text)) return;
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                              static_cast<utf8proc_ssize_t>(text.size()), &out,
                              static_cast<utf8proc_option_t>(options | UTF8PROC_STABLE));
  if (n < 0)
    fail(ErrorCode::invalid_argument, "unicode normalization failed: {}", utf8proc_errmsg(n));
  text.assign(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
}

template <typename Pred>
void filter_chars(std::string& text, Pred keep) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t start = pos;
    const char32_t c = unicode::next_code_point(text, pos);
    if (keep(c)) out.append(text, start, pos - start);
  }
  text.swap(out);
}

// Rust's char::to_lowercase: simple case mapping, except U+0130 which lowercases to two chars.
void lowercase(std::string& text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const auto b = static_cast<unsigned char>(text[pos]);
    if (b < 0x80) {
      out.push_back(static_cast<char>(b >= 'A' && b <= 'Z' ? b + 32 : b));
      ++pos;
      continue;
    }
    const char32_t c = unicode::next_code_point(text, pos);
    if (c == 0x130) {
      out.append("i\xCC\x87");
    } else {
      unicode::append_utf8(out, static_cast<char32_t>(utf8proc_tolower(static_cast<int32_t>(c))));
    }
  }
  text.swap(out);
}

class UnicodeForm final : public Normalizer {
 public:
  explicit UnicodeForm(int options) : options_(options) {}
  void normalize(std::string& text) const override { unicode_normalize(text, options_); }

 private:
  int options_;
};

class Lowercase final : public Normalizer {
 public:
  void normalize(std::string& text) const override { lowercase(text); }
};

class Replace final : public Normalizer {
 public:
  Replace(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& text) const override { text = pattern_.replace_all(text, content_); }

 private:
  Pattern pattern_;
  std::string content_;
};

class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      size_t pos = 0;
      while (pos < end) {
        const size_t start = pos;
        if (!unicode::is_whitespace(unicode::next_code_point(text, pos))) {
          begin = start;
          break;
        }
        begin = pos;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        size_t pos = start;
        if (!unicode::is_whitespace(unicode::next_code_point(text, pos))) break;
        end = start;
      }
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class StripAccents final : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    filter_chars(text, [](char32_t c) { return !unicode::is_combining_mark(c); });
  }
};

// HF's ByteLevel normalizer: every byte becomes its GPT-2 printable character.
class ByteLevelNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    const auto& table = unicode::byte_level_table();
    std::string out;
    out.reserve(text.size() * 2);
    for (const char c : text) out.append(table.byte_to_utf8[static_cast<unsigned char>(c)]);
    text.swap(out);
  }
};

bool is_chinese_char(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

class BertNormalizer final : public Normalizer {
 public:
  BertNormalizer(bool clean_text, bool chinese, bool strip_accents, bool lowercase)
      : clean_text_(clean_text),
        chinese_(chinese),
        strip_accents_(strip_accents),
        lowercase_(lowercase) {}
  void normalize(std::string& text) const override {
    if (clean_text_) {
      std::string out;
      out.reserve(text.size());
      size_t pos = 0;
      while (pos < text.size()) {
        const size_t start = pos;
        const char32_t c = unicode::next_code_point(text, pos);
        if (c == 0 || c == 0xFFFD || is_control(c)) continue;
        if (c == '\t' || c == '\n' || c == '\r' || unicode::is_whitespace(c)) {
          out.push_back(' ');
        } else {
          out.append(text, start, pos - start);
        }
      }
      text.swap(out);
    }
    if (chinese_) {
      std::string out;
      out.reserve(text.size());
      size_t pos = 0;
      while (pos < text.size()) {
        const size_t start = pos;
        const char32_t c = unicode::next_code_point(text, pos);
        if (is_chinese_char(c)) out.push_back(' ');
        out.append(text, start, pos - start);
        if (is_chinese_char(c)) out.push_back(' ');
      }
      text.swap(out);
    }
    if (strip_accents_) {
      unicode_normalize(text, UTF8PROC_DECOMPOSE);
      filter_chars(text, [](char32_t c) {
        return utf8proc_category(static_cast<int32_t>(c)) != UTF8PROC_CATEGORY_MN;
      });
    }
    if (lowercase_) lowercase(text);
  }

 private:
  static bool is_control(char32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    const auto k = utf8proc_category(static_cast<int32_t>(c));
    // HF's unicode_categories `is_other` has no table for unassigned code points (Cn).
    return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CO ||
           k == UTF8PROC_CATEGORY_CS;
  }
  bool clean_text_, chinese_, strip_accents_, lowercase_;
};

class Sequence final : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> items) : items_(std::move(items)) {}
  void normalize(std::string& text) const override {
    for (const auto& n : items_) n->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> items_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const JsonPath& path) {
  if (j.is_null()) return nullptr;
  const std::string type = json_type(j, path);
  if (type == "NFC") return std::make_unique<UnicodeForm>(UTF8PROC_COMPOSE);
  if (type == "NFD") return std::make_unique<UnicodeForm>(UTF8PROC_DECOMPOSE);
  if (type == "NFKC") return std::make_unique<UnicodeForm>(UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
  if (type == "NFKD") return std::make_unique<UnicodeForm>(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
  if (type == "Replace") {
    return std::make_unique<Replace>(
        Pattern::from_json(json_field(j, "pattern", path), path.child("pattern").where()),
        json_string(j, "content", path));
  }
  if (type == "Prepend") return std::make_unique<Prepend>(json_string(j, "prepend", path));
  if (type == "Strip") {
    return std::make_unique<Strip>(json_bool_or(j, "strip_left", false, path),
                                   json_bool_or(j, "strip_right", false, path));
  }
  if (type == "BertNormalizer") {
    const bool lower = json_bool_or(j, "lowercase", true, path);
    // strip_accents: null means "follow lowercase", as in BERT.
    return std::make_unique<BertNormalizer>(json_bool_or(j, "clean_text", true, path),
                                            json_bool_or(j, "handle_chinese_chars", true, path),
                                            json_bool_or(j, "strip_accents", lower, path), lower);
  }
  if (type == "Sequence") {
    const auto& list = json_field(j, "normalizers", path);
    if (!list.is_array()) path.fail("'normalizers' must be an array");
    std::vector<std::unique_ptr<Normalizer>> items;
    for (size_t i = 0; i < list.size(); ++i) {
      auto n = make_normalizer(list[i], path.child("normalizers").index(i));
      if (n) items.push_back(std::move(n));
    }
    return std::make_unique<Sequence>(std::move(items));
  }
  path.fail(fmt::format("unknown normalizer type '{}'", type));
}

}  // namespace hearth::text
