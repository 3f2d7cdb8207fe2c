// Builds the template AST from tokens with Jinja2's grammar and operator precedence.
#pragma once

#include <string_view>

#include "text/jinja/ast.h"

namespace hearth::text::jinja {

// Throws TemplateError(syntax) naming the line, for malformed templates and (as Jinja does at
// compile time) unknown filters and tests outside conditional code.
Body parse_template(std::string_view source);

}  // namespace hearth::text::jinja
