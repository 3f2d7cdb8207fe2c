// Python str semantics on UTF-8 strings. Templates index, slice and case-map strings the way
// Python does (by codepoint, with Unicode case tables), so byte-level shortcuts are taken only
// where the text is ASCII.
#include "text/jinja/pystr.h"

#include <utf8proc.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>

#include "text/jinja/value.h"

namespace hearth::text::jinja::py {
namespace {

bool is_ascii_space(unsigned char c) {
  return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20);
}

utf8proc_category_t category(char32_t c) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c));
}

template <typename F>
std::string map_chars(std::string_view s, F f) {
  std::string out;
  out.reserve(s.size());
  if (is_ascii(s)) {
    for (char c : s) out += static_cast<char>(f(static_cast<char32_t>(c)));
    return out;
  }
  for (char32_t c : decode(s)) append_utf8(out, f(c));
  return out;
}

}  // namespace

std::u32string decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += c;
      ++i;
      continue;
    }
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                                          static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
    if (n <= 0) {  // invalid byte: keep going with U+FFFD rather than looping forever
      out += U'\uFFFD';
      ++i;
    } else {
      out += static_cast<char32_t>(cp);
      i += static_cast<size_t>(n);
    }
  }
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

std::string encode(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) append_utf8(out, c);
  return out;
}

bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

int64_t codepoint_length(std::string_view s) {
  int64_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

bool is_space(char32_t c) {
  if (c < 0x80) return is_ascii_space(static_cast<unsigned char>(c));
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_upper_char(char32_t c) {
  return category(c) == UTF8PROC_CATEGORY_LU;
}
bool is_lower_char(char32_t c) {
  return category(c) == UTF8PROC_CATEGORY_LL;
}
bool is_cased(char32_t c) {
  auto cat = category(c);
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}
bool is_alpha_char(char32_t c) {
  auto cat = category(c);
  return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
}
bool is_decimal_char(char32_t c) {
  return category(c) == UTF8PROC_CATEGORY_ND;
}
bool is_digit_char(char32_t c) {
  // Python's isdigit also accepts superscripts and circled digits (category No with a digit
  // value); utf8proc has no digit property, so approximate with the common ranges.
  return is_decimal_char(c) || c == 0xB2 || c == 0xB3 || c == 0xB9 ||
         (c >= 0x2070 && c <= 0x2079) || (c >= 0x2080 && c <= 0x2089) ||
         (c >= 0x2460 && c <= 0x2468);
}
bool is_numeric_char(char32_t c) {
  auto cat = category(c);
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}
bool is_alnum_char(char32_t c) {
  return is_alpha_char(c) || is_numeric_char(c);
}
bool is_word_char(char32_t c) {
  return c == '_' || is_alnum_char(c);
}

char32_t to_upper(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
  return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c)));
}
char32_t to_lower(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
}
char32_t to_title(char32_t c) {
  if (c < 0x80) return to_upper(c);
  return static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(c)));
}

std::string upper(std::string_view s) {
  if (is_ascii(s)) return map_chars(s, to_upper);
  // Python applies full case mappings; the one templates meet in practice is ß → SS.
  std::string out;
  for (char32_t c : decode(s)) {
    if (c == U'\u00DF') {
      out += "SS";
    } else {
      append_utf8(out, to_upper(c));
    }
  }
  return out;
}

std::string lower(std::string_view s) {
  return map_chars(s, to_lower);
}

std::string swapcase(std::string_view s) {
  return map_chars(s, [](char32_t c) {
    if (is_upper_char(c)) return to_lower(c);
    if (is_lower_char(c)) return to_upper(c);
    return c;
  });
}

std::string title(std::string_view s) {
  bool previous_cased = false;
  return map_chars(s, [&](char32_t c) {
    char32_t mapped = previous_cased ? to_lower(c) : to_title(c);
    previous_cased = is_cased(c);
    return mapped;
  });
}

std::string capitalize(std::string_view s) {
  bool first = true;
  return map_chars(s, [&](char32_t c) {
    char32_t mapped = first ? to_title(c) : to_lower(c);
    first = false;
    return mapped;
  });
}

std::string strip(std::string_view s, StripSide side, const std::optional<std::string>& chars) {
  if (is_ascii(s) && (!chars || is_ascii(*chars))) {
    auto strip_it = [&](unsigned char c) {
      return chars ? chars->find(static_cast<char>(c)) != std::string::npos : is_ascii_space(c);
    };
    size_t begin = 0, end = s.size();
    if (side != StripSide::right)
      while (begin < end && strip_it(static_cast<unsigned char>(s[begin]))) ++begin;
    if (side != StripSide::left)
      while (end > begin && strip_it(static_cast<unsigned char>(s[end - 1]))) --end;
    return std::string(s.substr(begin, end - begin));
  }
  std::u32string text = decode(s);
  std::u32string set = chars ? decode(*chars) : std::u32string();
  auto strip_it = [&](char32_t c) {
    return chars ? set.find(c) != std::u32string::npos : is_space(c);
  };
  size_t begin = 0, end = text.size();
  if (side != StripSide::right)
    while (begin < end && strip_it(text[begin])) ++begin;
  if (side != StripSide::left)
    while (end > begin && strip_it(text[end - 1])) --end;
  return encode(std::u32string_view(text).substr(begin, end - begin));
}

std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep,
                               int64_t maxsplit) {
  std::vector<std::string> parts;
  if (maxsplit < 0) maxsplit = std::numeric_limits<int64_t>::max();
  if (sep) {
    if (sep->empty()) fail_render("empty separator");
    size_t pos = 0;
    while (maxsplit-- > 0) {
      size_t hit = s.find(*sep, pos);
      if (hit == std::string_view::npos) break;
      parts.emplace_back(s.substr(pos, hit - pos));
      pos = hit + sep->size();
    }
    parts.emplace_back(s.substr(pos));
    return parts;
  }
  std::u32string text = decode(s);
  size_t i = 0, n = text.size();
  while (true) {
    while (i < n && is_space(text[i])) ++i;
    if (i == n) break;
    if (maxsplit-- <= 0) {
      parts.push_back(encode(std::u32string_view(text).substr(i)));
      break;
    }
    size_t j = i;
    while (j < n && !is_space(text[j])) ++j;
    parts.push_back(encode(std::u32string_view(text).substr(i, j - i)));
    i = j;
  }
  return parts;
}

std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep,
                                int64_t maxsplit) {
  std::vector<std::string> parts;
  if (maxsplit < 0) maxsplit = std::numeric_limits<int64_t>::max();
  if (sep) {
    if (sep->empty()) fail_render("empty separator");
    size_t end = s.size();
    while (maxsplit-- > 0) {
      if (end < sep->size()) break;
      size_t hit = s.rfind(*sep, end - sep->size());
      if (hit == std::string_view::npos) break;
      parts.emplace_back(s.substr(hit + sep->size(), end - hit - sep->size()));
      end = hit;
    }
    parts.emplace_back(s.substr(0, end));
    std::reverse(parts.begin(), parts.end());
    return parts;
  }
  std::u32string text = decode(s);
  size_t j = text.size();
  while (true) {
    while (j > 0 && is_space(text[j - 1])) --j;
    if (j == 0) break;
    if (maxsplit-- <= 0) {
      parts.push_back(encode(std::u32string_view(text).substr(0, j)));
      break;
    }
    size_t i = j;
    while (i > 0 && !is_space(text[i - 1])) --i;
    parts.push_back(encode(std::u32string_view(text).substr(i, j - i)));
    j = i;
  }
  std::reverse(parts.begin(), parts.end());
  return parts;
}

std::vector<std::string> splitlines(std::string_view s, bool keepends) {
  std::vector<std::string> lines;
  std::u32string text = decode(s);
  size_t i = 0, n = text.size();
  while (i < n) {
    size_t j = i;
    while (j < n) {
      char32_t c = text[j];
      if (c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
          c == 0x85 || c == 0x2028 || c == 0x2029)
        break;
      ++j;
    }
    size_t eol = j;
    if (j < n) {
      eol = (text[j] == '\r' && j + 1 < n && text[j + 1] == '\n') ? j + 2 : j + 1;
    }
    lines.push_back(encode(std::u32string_view(text).substr(i, (keepends ? eol : j) - i)));
    i = eol;
  }
  return lines;
}

std::string replace(std::string_view s, std::string_view old, std::string_view replacement,
                    int64_t count) {
  if (count < 0) count = std::numeric_limits<int64_t>::max();
  std::string out;
  if (old.empty()) {
    // Python inserts the replacement before every codepoint and at the end.
    std::u32string text = decode(s);
    for (char32_t c : text) {
      if (count > 0) {
        out += replacement;
        --count;
      }
      append_utf8(out, c);
    }
    if (count > 0) out += replacement;
    return out;
  }
  size_t pos = 0;
  while (count-- > 0) {
    size_t hit = s.find(old, pos);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(pos, hit - pos));
    out.append(replacement);
    pos = hit + old.size();
  }
  out.append(s.substr(pos));
  return out;
}

int64_t count(std::string_view s, std::string_view sub) {
  if (sub.empty()) return codepoint_length(s) + 1;
  int64_t n = 0;
  for (size_t pos = s.find(sub); pos != std::string_view::npos; pos = s.find(sub, pos + sub.size()))
    ++n;
  return n;
}

int64_t find(std::string_view s, std::string_view sub, std::optional<int64_t> start,
             std::optional<int64_t> end, bool reverse) {
  std::u32string text = decode(s);
  std::u32string needle = decode(sub);
  auto len = static_cast<int64_t>(text.size());
  int64_t b = start.value_or(0), e = end.value_or(len);
  if (b < 0) b = std::max<int64_t>(0, b + len);
  if (e < 0) e = std::max<int64_t>(0, e + len);
  e = std::min(e, len);
  if (b > len || b > e || e - b < static_cast<int64_t>(needle.size())) return -1;
  std::u32string_view window = std::u32string_view(text).substr(b, e - b);
  size_t hit = reverse ? window.rfind(needle) : window.find(needle);
  return hit == std::u32string_view::npos ? -1 : b + static_cast<int64_t>(hit);
}

std::string pad(std::string_view s, int64_t width, char32_t fill, char align) {
  int64_t len = codepoint_length(s);
  if (width <= len) return std::string(s);
  int64_t margin = width - len, left = 0;
  if (align == '>') left = margin;
  if (align == '^') left = margin / 2;
  if (align == 'c') left = margin / 2 + (margin & width & 1);  // str.center's own rounding
  std::string out;
  for (int64_t i = 0; i < left; ++i) append_utf8(out, fill);
  out.append(s);
  for (int64_t i = left; i < margin; ++i) append_utf8(out, fill);
  return out;
}

SliceBounds adjust_slice(int64_t length, std::optional<int64_t> start_opt,
                         std::optional<int64_t> stop_opt, std::optional<int64_t> step_opt) {
  int64_t step = step_opt.value_or(1);
  if (step == 0) fail_render("slice step cannot be zero");
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  int64_t start = start_opt.value_or(step < 0 ? kMax : 0);
  int64_t stop = stop_opt.value_or(step < 0 ? kMin : kMax);
  auto adjust = [&](int64_t& index) {
    if (index < 0) {
      index = index == kMin ? -1 : index + length;
      if (index < 0) index = step < 0 ? -1 : 0;
    } else if (index >= length) {
      index = step < 0 ? length - 1 : length;
    }
  };
  adjust(start);
  adjust(stop);
  int64_t count = 0;
  if (step > 0 && start < stop) count = (stop - start - 1) / step + 1;
  if (step < 0 && stop < start) count = (start - stop - 1) / -step + 1;
  return {start, stop, step, count};
}

std::vector<int64_t> slice_indices(int64_t length, std::optional<int64_t> start,
                                   std::optional<int64_t> stop, std::optional<int64_t> step) {
  SliceBounds b = adjust_slice(length, start, stop, step);
  std::vector<int64_t> indices;
  indices.reserve(static_cast<size_t>(b.count));
  for (int64_t i = 0; i < b.count; ++i) indices.push_back(b.start + i * b.step);
  return indices;
}

std::string slice(std::string_view s, std::optional<int64_t> start, std::optional<int64_t> stop,
                  std::optional<int64_t> step) {
  bool ascii = is_ascii(s);
  if (ascii && step.value_or(1) == 1) {
    auto idx = slice_indices(static_cast<int64_t>(s.size()), start, stop, step);
    return idx.empty() ? std::string() : std::string(s.substr(idx.front(), idx.size()));
  }
  std::u32string text = ascii ? std::u32string() : decode(s);
  int64_t len = ascii ? static_cast<int64_t>(s.size()) : static_cast<int64_t>(text.size());
  std::string out;
  for (int64_t i : slice_indices(len, start, stop, step)) {
    if (ascii) {
      out += s[i];
    } else {
      append_utf8(out, text[i]);
    }
  }
  return out;
}

std::optional<std::string> char_at(std::string_view s, int64_t index) {
  if (is_ascii(s)) {
    auto len = static_cast<int64_t>(s.size());
    if (index < 0) index += len;
    if (index < 0 || index >= len) return std::nullopt;
    return std::string(1, s[index]);
  }
  std::u32string text = decode(s);
  auto len = static_cast<int64_t>(text.size());
  if (index < 0) index += len;
  if (index < 0 || index >= len) return std::nullopt;
  std::string out;
  append_utf8(out, text[index]);
  return out;
}

std::string repr_string(std::string_view s) {
  bool has_single = s.find('\'') != std::string_view::npos;
  bool has_double = s.find('"') != std::string_view::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t c : decode(s)) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned>(c));
    } else if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      // str.isprintable(): everything but control, format, surrogate, private-use, unassigned and
      // separator characters (the ASCII space aside).
      auto cat = category(c);
      bool printable = !(cat == UTF8PROC_CATEGORY_CN || cat == UTF8PROC_CATEGORY_CC ||
                         cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CS ||
                         cat == UTF8PROC_CATEGORY_CO || cat == UTF8PROC_CATEGORY_ZL ||
                         cat == UTF8PROC_CATEGORY_ZP || cat == UTF8PROC_CATEGORY_ZS);
      if (printable) {
        append_utf8(out, c);
      } else if (c < 0x100) {
        out += fmt::format("\\x{:02x}", static_cast<unsigned>(c));
      } else if (c < 0x10000) {
        out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
      } else {
        out += fmt::format("\\U{:08x}", static_cast<unsigned>(c));
      }
    }
  }
  out += quote;
  return out;
}

std::string float_repr(double d) {
  if (d != d) return "nan";
  if (d == std::numeric_limits<double>::infinity()) return "inf";
  if (d == -std::numeric_limits<double>::infinity()) return "-inf";
  // Shortest round-trip digits, then Python's layout rule (repr switches to exponent notation
  // below 1e-4 and from 1e16 on).
  char buf[64];
  auto result = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(result.ptr - buf));
  bool negative = !sci.empty() && sci[0] == '-';
  if (negative) sci.remove_prefix(1);
  size_t e_pos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_pos))
    if (c != '.') digits += c;
  int exponent = 0;
  std::string_view exp_text = sci.substr(e_pos + 1);
  if (!exp_text.empty() && exp_text[0] == '+') exp_text.remove_prefix(1);
  std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exponent);
  int decpt = exponent + 1;
  auto n = static_cast<int>(digits.size());
  std::string out = negative ? "-" : "";
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
    } else if (decpt >= n) {
      out += digits + std::string(static_cast<size_t>(decpt - n), '0') + ".0";
    } else {
      out.append(digits, 0, static_cast<size_t>(decpt));
      out += '.';
      out.append(digits, static_cast<size_t>(decpt));
    }
  } else {
    out += digits[0];
    if (n > 1) {
      out += '.';
      out.append(digits, 1);
    }
    out += fmt::format("e{}{:02d}", exponent < 0 ? '-' : '+', std::abs(exponent));
  }
  return out;
}

}  // namespace hearth::text::jinja::py
