// UTF-8 and Unicode property helpers for the tokenizer: decoding, Rust-compatible lossy UTF-8
// repair, the character classes HF `tokenizers` uses (Rust's char predicates) and the GPT-2
// byte-to-unicode table.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace hearth::text::unicode {

// Decodes the code point at `s[pos]` of valid UTF-8 and advances `pos` past it.
inline char32_t next_code_point(std::string_view s, size_t& pos) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  if (b0 < 0x80) {
    pos += 1;
    return b0;
  }
  const auto cont = [&](size_t i) { return static_cast<unsigned char>(s[pos + i]) & 0x3Fu; };
  char32_t cp;
  if (b0 < 0xE0) {
    cp = ((b0 & 0x1Fu) << 6) | cont(1);
    pos += 2;
  } else if (b0 < 0xF0) {
    cp = ((b0 & 0x0Fu) << 12) | (cont(1) << 6) | cont(2);
    pos += 3;
  } else {
    cp = ((b0 & 0x07u) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3);
    pos += 4;
  }
  return cp;
}

// Byte length of the UTF-8 sequence starting with lead byte `b` (1 for stray bytes).
inline size_t sequence_length(unsigned char b) {
  return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}

void append_utf8(std::string& out, char32_t cp);
std::string to_utf8(char32_t cp);

bool is_valid_utf8(std::string_view s);
// As Rust's String::from_utf8_lossy: each maximal ill-formed subsequence becomes one U+FFFD.
std::string from_utf8_lossy(std::string_view bytes);
// Length of a trailing sequence of `bytes` that is a proper prefix of a well-formed character
// (could still complete when more bytes arrive); 0 when the end is not such a prefix.
size_t incomplete_suffix_length(std::string_view bytes);

// Rust's char::is_whitespace (the White_Space property).
bool is_whitespace(char32_t c);
// Rust's char::is_numeric (general categories Nd, Nl, No).
bool is_numeric(char32_t c);
// Rust's char::is_alphanumeric (Alphabetic or Numeric); Alphabetic is approximated by L* + Nl.
bool is_alphanumeric(char32_t c);
// Rust regex's \w (Alphabetic + Mark + Nd + Pc + Join_Control), Alphabetic approximated as above.
bool is_word_char(char32_t c);
// HF's punctuation test: ASCII punctuation or general category P*.
bool is_punctuation(char32_t c);
// General category M* (what HF's StripAccents removes after decomposition).
bool is_combining_mark(char32_t c);

// GPT-2's reversible byte <-> printable character table used by ByteLevel.
struct ByteLevelTable {
  std::array<char32_t, 256> byte_to_char;
  std::array<std::string, 256> byte_to_utf8;
  // Inverse: code point (all < 0x200) -> byte, -1 when the char is not in the table.
  std::array<int16_t, 0x200> char_to_byte;
};
const ByteLevelTable& byte_level_table();

}  // namespace hearth::text::unicode
