// Implementation of the UTF-8 and Unicode property helpers (see unicode.h). Properties come from
// utf8proc's tables so that they follow one Unicode version throughout.
#include "text/unicode.h"

#include <utf8proc.h>

namespace hearth::text::unicode {

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string to_utf8(char32_t cp) {
  std::string s;
  append_utf8(s, cp);
  return s;
}

namespace {

// Number of bytes of the well-formed prefix of a character starting at s[i] (Unicode table 3-7),
// and whether the character is complete. A stray or invalid lead byte gives {0, false}.
struct Prefix {
  size_t valid;  // lead byte plus accepted continuation bytes
  size_t need;   // full length of the character for this lead byte
};

Prefix well_formed_prefix(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {1, 1};
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {0, 1};
  }
  size_t valid = 1;
  while (valid < need && i + valid < s.size()) {
    const auto b = static_cast<unsigned char>(s[i + valid]);
    const unsigned char l = valid == 1 ? lo : 0x80, h = valid == 1 ? hi : 0xBF;
    if (b < l || b > h) break;
    ++valid;
  }
  return {valid, need};
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const Prefix p = well_formed_prefix(s, i);
    if (p.valid != p.need) return false;
    i += p.valid;
  }
  return true;
}

std::string from_utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      out.push_back(s[i++]);
      continue;
    }
    const Prefix p = well_formed_prefix(s, i);
    if (p.valid == p.need) {
      out.append(s.substr(i, p.valid));
      i += p.valid;
    } else {
      out.append("\xEF\xBF\xBD");
      i += p.valid == 0 ? 1 : p.valid;
    }
  }
  return out;
}

size_t incomplete_suffix_length(std::string_view s) {
  // A character is at most 4 bytes, so only the last 3 bytes can start an incomplete one.
  const size_t first = s.size() > 3 ? s.size() - 3 : 0;
  for (size_t i = first; i < s.size(); ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80 || (b & 0xC0) == 0x80) continue;
    const Prefix p = well_formed_prefix(s, i);
    if (p.valid > 0 && p.valid < p.need && i + p.valid == s.size()) return s.size() - i;
  }
  return 0;
}

bool is_whitespace(char32_t c) {
  switch (c) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

namespace {
utf8proc_category_t category(char32_t c) {
  return static_cast<utf8proc_category_t>(utf8proc_category(static_cast<utf8proc_int32_t>(c)));
}
bool is_letter(utf8proc_category_t k) {
  return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}
bool is_mark(utf8proc_category_t k) {
  return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_MC || k == UTF8PROC_CATEGORY_ME;
}
}  // namespace

bool is_numeric(char32_t c) {
  const auto k = category(c);
  return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

bool is_alphanumeric(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
  const auto k = category(c);
  return is_letter(k) || k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL ||
         k == UTF8PROC_CATEGORY_NO;
}

bool is_word_char(char32_t c) {
  if (c < 0x80) return is_alphanumeric(c) || c == '_';
  if (c == 0x200C || c == 0x200D) return true;
  const auto k = category(c);
  return is_letter(k) || is_mark(k) || k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL ||
         k == UTF8PROC_CATEGORY_PC;
}

bool is_punctuation(char32_t c) {
  if (c < 0x80)
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
           (c >= 0x7B && c <= 0x7E);
  const auto k = category(c);
  return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

bool is_combining_mark(char32_t c) {
  return is_mark(category(c));
}

namespace {
ByteLevelTable make_byte_level_table() {
  ByteLevelTable t{};
  t.char_to_byte.fill(-1);
  // Printable Latin-1 bytes map to themselves; the rest are shifted above U+0100 in byte order,
  // as GPT-2's bytes_to_unicode() does.
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    t.byte_to_char[b] = printable ? static_cast<char32_t>(b) : next++;
  }
  for (int b = 0; b < 256; ++b) {
    t.byte_to_utf8[b] = to_utf8(t.byte_to_char[b]);
    t.char_to_byte[t.byte_to_char[b]] = static_cast<int16_t>(b);
  }
  return t;
}
}  // namespace

const ByteLevelTable& byte_level_table() {
  static const ByteLevelTable table = make_byte_level_table();
  return table;
}

}  // namespace hearth::text::unicode
