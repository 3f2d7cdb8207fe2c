// Template: owns the parsed AST; each render gets a fresh interpreter and scope chain, so one
// compiled template may render concurrently from several threads.
#include "text/jinja/template.h"

#include "text/jinja/builtins.h"
#include "text/jinja/interpreter.h"
#include "text/jinja/parser.h"

namespace hearth::text::jinja {

struct Template::Parsed {
  Body body;
};

Template Template::parse(std::string_view source) {
  auto parsed = std::make_shared<Parsed>();
  parsed->body = parse_template(source);
  return Template(std::move(parsed));
}

std::string Template::render(const std::vector<std::pair<std::string, Value>>& context) const {
  auto globals = std::make_shared<Frame>(nullptr);
  globals->vars = make_globals();
  auto variables = std::make_shared<Frame>(globals);
  for (const auto& [name, value] : context) variables->set(name, value);
  Interpreter interp(variables);
  std::string out;
  interp.render(parsed_->body, out);
  return out;
}

}  // namespace hearth::text::jinja
