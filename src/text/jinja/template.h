// The Jinja engine's entry point: parse a template once, render it many times.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "text/jinja/value.h"

namespace hearth::text::jinja {

struct Stmt;

class Template {
 public:
  // Throws TemplateError (kind syntax) with the line at fault.
  static Template parse(std::string_view source);

  // Renders with `context` as the template's variables (over the built-in globals). Throws
  // TemplateError (runtime or raised) with the template line at fault.
  std::string render(const std::vector<std::pair<std::string, Value>>& context) const;

 private:
  struct Parsed;
  explicit Template(std::shared_ptr<const Parsed> parsed) : parsed_(std::move(parsed)) {}
  std::shared_ptr<const Parsed> parsed_;
};

}  // namespace hearth::text::jinja
