// Jinja2's lexer, hand-written: text/tag splitting with `-`/`+` whitespace control,
// trim_blocks (drop the newline after a block or comment tag), lstrip_blocks (drop the
// indentation before one), raw blocks, comments, and the expression tokens inside tags.
// Newlines are normalized and one trailing newline dropped up front, as Jinja does.
#include "text/jinja/lexer.h"

#include <utf8proc.h>

#include <optional>

#include "text/jinja/pystr.h"
#include "text/jinja/value.h"

namespace hearth::text::jinja {
namespace {

[[noreturn]] void syntax_error(int line, std::string message) {
  throw TemplateError(TemplateError::Kind::syntax, std::move(message), line);
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) {
  return is_name_start(c) || is_digit(c);
}
bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

int count_newlines(std::string_view s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

std::string normalize_source(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();  // keep_trailing_newline=False
  return out;
}

// Decodes a string literal body as Python's "unicode-escape" codec does after Jinja's
// encode("ascii", "backslashreplace").
std::string decode_string_literal(std::string_view body, int line) {
  std::string out;
  size_t i = 0;
  auto hex_value = [&](size_t start, size_t digits) -> char32_t {
    if (start + digits > body.size()) syntax_error(line, "truncated escape in string literal");
    char32_t v = 0;
    for (size_t k = start; k < start + digits; ++k) {
      char c = body[k];
      int d = is_digit(c)              ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
      if (d < 0) syntax_error(line, "truncated escape in string literal");
      v = v * 16 + static_cast<char32_t>(d);
    }
    return v;
  };
  while (i < body.size()) {
    char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) {
      out += c;
      ++i;
      continue;
    }
    char e = body[i + 1];
    i += 2;
    switch (e) {
      case '\n':
        break;
      case '\\':
        out += '\\';
        break;
      case '\'':
        out += '\'';
        break;
      case '"':
        out += '"';
        break;
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'v':
        out += '\v';
        break;
      case 'x':
        py::append_utf8(out, hex_value(i, 2));
        i += 2;
        break;
      case 'u':
        py::append_utf8(out, hex_value(i, 4));
        i += 4;
        break;
      case 'U': {
        char32_t cp = hex_value(i, 8);
        if (cp > 0x10FFFF) syntax_error(line, "illegal Unicode character in string literal");
        py::append_utf8(out, cp);
        i += 8;
        break;
      }
      case 'N':
        syntax_error(line, "\\N{...} escapes are not supported");
      default:
        if (e >= '0' && e <= '7') {
          char32_t v = static_cast<char32_t>(e - '0');
          for (int k = 0; k < 2 && i < body.size() && body[i] >= '0' && body[i] <= '7'; ++k)
            v = v * 8 + static_cast<char32_t>(body[i++] - '0');
          py::append_utf8(out, v);
        } else if (static_cast<unsigned char>(e) >= 0x80) {
          // The non-ASCII character was turned into a \x/\u escape by backslashreplace, whose
          // backslash the literal's backslash then escaped: the escape text survives.
          size_t start = i - 1, end = i;
          while (end < body.size() && (static_cast<unsigned char>(body[end]) & 0xC0) == 0x80) ++end;
          char32_t cp = py::decode(body.substr(start, end - start))[0];
          out += '\\';
          if (cp < 0x100) {
            out += fmt::format("x{:02x}", static_cast<unsigned>(cp));
          } else if (cp < 0x10000) {
            out += fmt::format("u{:04x}", static_cast<unsigned>(cp));
          } else {
            out += fmt::format("U{:08x}", static_cast<unsigned>(cp));
          }
          i = end;
        } else {
          out += '\\';
          out += e;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) : src_(normalize_source(source)) {}

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      size_t tag = find_tag_start(pos_);
      if (tag == std::string::npos) {
        emit_text(src_.substr(pos_), line_);
        pos_ = src_.size();
        break;
      }
      char kind = src_[tag + 1];
      char sign = tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+')
                      ? src_[tag + 2]
                      : 0;
      std::optional<size_t> raw_end = kind == '%' ? match_raw_begin(tag) : std::nullopt;
      std::string text = src_.substr(pos_, tag - pos_);
      int text_line = line_;
      line_ += count_newlines(text);
      emit_text(apply_left_strip(std::move(text), sign, kind != '{'), text_line);
      pos_ = tag + 2 + (sign ? 1 : 0);
      if (raw_end) {
        line_ += count_newlines(std::string_view(src_).substr(pos_, *raw_end - pos_));
        pos_ = *raw_end;
        line_starting_ = src_[pos_ - 1] == '\n';
        lex_raw_body(tag);
      } else if (kind == '#') {
        lex_comment();
      } else {
        lex_tag(kind == '%');
      }
    }
    tokens_.push_back({TokenType::eof, "", line_});
    return std::move(tokens_);
  }

 private:
  size_t find_tag_start(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#'))
        return i;
    }
    return std::string::npos;
  }

  // `-` strips all whitespace before the tag; otherwise lstrip_blocks drops the spaces and tabs
  // between the start of the line and a block or comment tag.
  std::string apply_left_strip(std::string text, char sign, bool block_like) const {
    if (sign == '-') return py::strip(text, py::StripSide::right, std::nullopt);
    if (sign == '+' || !block_like) return text;
    size_t l_pos = text.rfind('\n');
    l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
    if (l_pos > 0 || line_starting_) {
      if (text.find_first_not_of(" \t", l_pos) == std::string::npos) text.resize(l_pos);
    }
    return text;
  }

  void emit_text(std::string text, int line) {
    if (!text.empty()) tokens_.push_back({TokenType::text, std::move(text), line});
  }

  size_t skip_ws(size_t i) const {
    while (i < src_.size() && is_ws(src_[i])) ++i;
    return i;
  }

  // `{%[-+]? raw [-]?%}` at `tag`: returns the position after it.
  std::optional<size_t> match_raw_begin(size_t tag) const {
    size_t i = skip_ws(tag + 2 + ((src_[tag + 2] == '-' || src_[tag + 2] == '+') ? 1 : 0));
    if (src_.compare(i, 3, "raw") != 0) return std::nullopt;
    i = skip_ws(i + 3);
    if (src_.compare(i, 3, "-%}") == 0) return skip_ws(i + 3);
    if (src_.compare(i, 2, "%}") == 0) return i + 2;
    return std::nullopt;
  }

  void lex_raw_body(size_t begin_tag) {
    for (size_t tag = src_.find("{%", pos_); tag != std::string::npos;
         tag = src_.find("{%", tag + 1)) {
      char sign = tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+')
                      ? src_[tag + 2]
                      : 0;
      size_t i = skip_ws(tag + 2 + (sign ? 1 : 0));
      if (src_.compare(i, 6, "endraw") != 0) continue;
      i = skip_ws(i + 6);
      size_t end;
      if (src_.compare(i, 3, "+%}") == 0) {
        end = i + 3;
      } else if (src_.compare(i, 3, "-%}") == 0) {
        end = skip_ws(i + 3);
      } else if (src_.compare(i, 2, "%}") == 0) {
        end = i + 2 + (i + 2 < src_.size() && src_[i + 2] == '\n');
      } else {
        continue;
      }
      std::string body = src_.substr(pos_, tag - pos_);
      int body_line = line_;
      emit_text(apply_left_strip(std::move(body), sign, true), body_line);
      line_ += count_newlines(std::string_view(src_).substr(pos_, end - pos_));
      pos_ = end;
      line_starting_ = src_[end - 1] == '\n';
      return;
    }
    syntax_error(line_at(begin_tag), "Missing end of raw directive");
  }

  int line_at(size_t offset) const {
    return 1 + count_newlines(std::string_view(src_).substr(0, offset));
  }

  void lex_comment() {
    size_t body_start = pos_;
    size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) syntax_error(line_, "Missing end of comment tag");
    size_t after = end + 2;
    char sign = end > body_start ? src_[end - 1] : 0;
    if (sign == '-') {
      after = skip_ws(after);
    } else if (sign != '+' && after < src_.size() && src_[after] == '\n') {
      ++after;  // trim_blocks
    }
    line_ += count_newlines(std::string_view(src_).substr(pos_, after - pos_));
    pos_ = after;
    line_starting_ = src_[after - 1] == '\n';
  }

  void lex_tag(bool block) {
    tokens_.push_back({block ? TokenType::block_begin : TokenType::variable_begin, "", line_});
    std::string brackets;  // open brackets; tag ends are only recognized outside them
    while (true) {
      size_t i = skip_ws(pos_);
      line_ += count_newlines(std::string_view(src_).substr(pos_, i - pos_));
      pos_ = i;
      if (pos_ >= src_.size()) return;  // the parser reports the missing tag end
      if (brackets.empty() && try_tag_end(block)) return;
      lex_expression_token(brackets);
    }
  }

  bool try_tag_end(bool block) {
    const char* close = block ? "%}" : "}}";
    size_t after;
    if (src_.compare(pos_, 3, std::string("-") + close) == 0) {
      after = skip_ws(pos_ + 3);
    } else if (block && src_.compare(pos_, 3, "+%}") == 0) {
      after = pos_ + 3;
    } else if (src_.compare(pos_, 2, close) == 0) {
      after = pos_ + 2;
      if (block && after < src_.size() && src_[after] == '\n') ++after;  // trim_blocks
    } else {
      return false;
    }
    tokens_.push_back({block ? TokenType::block_end : TokenType::variable_end, "", line_});
    line_ += count_newlines(std::string_view(src_).substr(pos_, after - pos_));
    pos_ = after;
    line_starting_ = src_[after - 1] == '\n';
    return true;
  }

  // Jinja names are Python identifiers: beyond ASCII, letters (and, after the first character,
  // marks, digits and connectors) of any script. Returns the UTF-8 length of such a character
  // at `at`, or 0.
  size_t identifier_char_length(size_t at, bool start) const {
    if (static_cast<unsigned char>(src_[at]) < 0x80) return 0;
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t n =
        utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(src_.data() + at),
                         static_cast<utf8proc_ssize_t>(src_.size() - at), &cp);
    if (n <= 0) return 0;
    auto cat = utf8proc_category(cp);
    bool letter =
        (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) || cat == UTF8PROC_CATEGORY_NL;
    bool continuing = cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_MC ||
                      cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_PC;
    return (letter || (!start && continuing)) ? static_cast<size_t>(n) : 0;
  }

  void lex_expression_token(std::string& brackets) {
    char c = src_[pos_];
    if (is_digit(c)) {
      lex_number();
      return;
    }
    if (is_name_start(c) || identifier_char_length(pos_, true) > 0) {
      size_t end = pos_;
      while (end < src_.size()) {
        if (is_name_char(src_[end])) {
          ++end;
        } else if (size_t n = identifier_char_length(end, false)) {
          end += n;
        } else {
          break;
        }
      }
      tokens_.push_back({TokenType::name, src_.substr(pos_, end - pos_), line_});
      pos_ = end;
      return;
    }
    if (c == '\'' || c == '"') {
      size_t i = pos_ + 1;
      while (i < src_.size() && src_[i] != c) i += src_[i] == '\\' ? 2 : 1;
      if (i >= src_.size())
        syntax_error(line_, fmt::format("unexpected char {} at {}",
                                        py::repr_string(std::string(1, c)), pos_));
      std::string_view body = std::string_view(src_).substr(pos_ + 1, i - pos_ - 1);
      tokens_.push_back({TokenType::string, decode_string_literal(body, line_), line_});
      line_ += count_newlines(body);
      pos_ = i + 1;
      return;
    }
    static constexpr std::string_view kTwoChar[] = {"//", "**", "==", "!=", ">=", "<="};
    for (std::string_view op : kTwoChar) {
      if (src_.compare(pos_, 2, op) == 0) {
        tokens_.push_back({TokenType::op, std::string(op), line_});
        pos_ += 2;
        return;
      }
    }
    if (std::string_view("+-/*%~[](){}><=.:|,;").find(c) == std::string_view::npos) {
      size_t end = pos_ + 1;
      while (end < src_.size() && (static_cast<unsigned char>(src_[end]) & 0xC0) == 0x80) ++end;
      syntax_error(line_, fmt::format("unexpected char {} at {}",
                                      py::repr_string(src_.substr(pos_, end - pos_)), pos_));
    }
    if (c == '(' || c == '[' || c == '{') {
      brackets += c;
    } else if (c == ')' || c == ']' || c == '}') {
      char open = c == ')' ? '(' : (c == ']' ? '[' : '{');
      if (brackets.empty()) syntax_error(line_, fmt::format("unexpected '{}'", c));
      if (brackets.back() != open) {
        char expected = brackets.back() == '(' ? ')' : (brackets.back() == '[' ? ']' : '}');
        syntax_error(line_, fmt::format("unexpected '{}', expected '{}'", c, expected));
      }
      brackets.pop_back();
    }
    tokens_.push_back({TokenType::op, std::string(1, c), line_});
    ++pos_;
  }

  // Digits with optional '_' separators, as Jinja's integer_re/float_re (case-insensitive).
  size_t digits(size_t i, bool (*ok)(char)) const {
    size_t start = i;
    while (i < src_.size()) {
      if (ok(src_[i])) {
        ++i;
      } else if (src_[i] == '_' && i > start && i + 1 < src_.size() && ok(src_[i + 1])) {
        ++i;
      } else {
        break;
      }
    }
    return i;
  }

  void lex_number() {
    auto strip_underscores = [](std::string s) {
      std::string out;
      for (char c : s)
        if (c != '_') out += c;
      return out;
    };
    bool after_dot = pos_ > 0 && src_[pos_ - 1] == '.';
    size_t int_end = digits(pos_, is_digit);
    if (!after_dot) {  // float_re has (?<!\.)
      size_t i = int_end;
      bool has_fraction = false;
      if (i + 1 < src_.size() && src_[i] == '.' && is_digit(src_[i + 1])) {
        i = digits(i + 1, is_digit);
        has_fraction = true;
      }
      size_t exp_end = std::string::npos;
      if (i < src_.size() && (src_[i] == 'e' || src_[i] == 'E')) {
        size_t j = i + 1;
        if (j < src_.size() && (src_[j] == '+' || src_[j] == '-')) ++j;
        if (j < src_.size() && is_digit(src_[j])) exp_end = digits(j, is_digit);
      }
      if (exp_end != std::string::npos) i = exp_end;
      if (has_fraction || exp_end != std::string::npos) {
        tokens_.push_back(
            {TokenType::floating, strip_underscores(src_.substr(pos_, i - pos_)), line_});
        pos_ = i;
        return;
      }
    }
    char c0 = src_[pos_];
    char c1 = pos_ + 1 < src_.size() ? static_cast<char>(src_[pos_ + 1] | 0x20) : 0;
    if (c0 == '0' && (c1 == 'x' || c1 == 'o' || c1 == 'b')) {
      bool (*ok)(char) =
          c1 == 'x' ? [](char c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
          : c1 == 'o' ? [](char c) { return c >= '0' && c <= '7'; }
                      : [](char c) { return c == '0' || c == '1'; };
      size_t start = pos_ + 2;
      if (start < src_.size() && src_[start] == '_') ++start;
      size_t end = digits(start, ok);
      if (end > start) {
        tokens_.push_back(
            {TokenType::integer, strip_underscores(src_.substr(pos_, end - pos_)), line_});
        pos_ = end;
        return;
      }
    }
    size_t end = int_end;
    if (c0 == '0') {  // 0(_?0)*: a leading zero only continues with zeros
      end = pos_ + 1;
      while (end < src_.size() && (src_[end] == '0' || (src_[end] == '_' && end + 1 < src_.size() &&
                                                        src_[end + 1] == '0')))
        ++end;
    }
    tokens_.push_back(
        {TokenType::integer, strip_underscores(src_.substr(pos_, end - pos_)), line_});
    pos_ = end;
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) {
  return Lexer(source).run();
}

const char* token_type_name(TokenType type) {
  switch (type) {
    case TokenType::text:
      return "template data";
    case TokenType::variable_begin:
      return "begin of print statement";
    case TokenType::variable_end:
      return "end of print statement";
    case TokenType::block_begin:
      return "begin of statement block";
    case TokenType::block_end:
      return "end of statement block";
    case TokenType::name:
      return "name";
    case TokenType::string:
      return "string";
    case TokenType::integer:
      return "integer";
    case TokenType::floating:
      return "float";
    case TokenType::op:
      return "operator";
    case TokenType::eof:
      return "end of template";
  }
  return "token";
}

}  // namespace hearth::text::jinja
