// Splits a Jinja template into text and tag tokens the way Jinja2's lexer does with
// transformers' settings (trim_blocks, lstrip_blocks, no trailing newline kept).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hearth::text::jinja {

enum class TokenType {
  text,            // template data between tags
  variable_begin,  // {{
  variable_end,    // }}
  block_begin,     // {%
  block_end,       // %}
  name,
  string,   // value is the decoded literal
  integer,  // value is the digits without '_' (with any 0x/0o/0b prefix)
  floating,
  op,  // operator or bracket: + - * / // % ** ~ == != < <= > >= = . : | , ( ) [ ] { }
  eof,
};

struct Token {
  TokenType type;
  std::string value;
  int line;
};

// Throws TemplateError(syntax) with the line of the offending character.
std::vector<Token> tokenize(std::string_view source);

const char* token_type_name(TokenType type);

}  // namespace hearth::text::jinja
