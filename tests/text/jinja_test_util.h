// Test helpers for the Jinja engine and chat templates: render a batch of cases with hearth and
// with the Python Jinja2 reference (render_reference.py), and compare the two.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace hearth::test {

using Json = nlohmann::ordered_json;

struct RenderResult {
  bool ok = false;
  std::string output;  // when ok
  std::string kind;  // when failed: syntax, runtime, raised (hearth: also invalid_argument/format)
  std::string error;
};

// Runs tests/text/render_reference.py (with /usr/bin/python3) over `cases` in one process.
// Each case is {"template": ..., "context": {...}} or {"template": ..., "chat": {...}}.
std::vector<RenderResult> render_reference(const Json& cases);

// Renders one engine case ({"template", "context"}) with hearth's Jinja engine.
RenderResult render_engine(const Json& test_case);

// Renders one chat case ({"template", "chat"}) through hearth::text::ChatTemplate.
RenderResult render_chat(const Json& test_case, const std::string& origin = "template");

// Renders every case with hearth and the reference and expects identical results: the same
// output byte for byte, or an error from both (of the same kind for syntax errors and
// raise_exception, with the same message for the latter).
void expect_same_as_reference(const Json& cases);

// A readable one-line description of a case for failure messages.
std::string describe_case(const Json& test_case);

}  // namespace hearth::test
