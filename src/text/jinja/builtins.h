// The built-in filters, tests, globals and Python methods of the sandboxed environment
// transformers renders chat templates with.
#pragma once

#include <string>
#include <string_view>

#include "text/jinja/ast.h"
#include "text/jinja/value.h"

namespace hearth::text::jinja {

// Null when there is no such filter / test.
FilterFn find_filter(std::string_view name);
TestFn find_test(std::string_view name);
// Jinja filters hearth leaves out (groupby, wordwrap, ...): they compile, and fail when run.
bool is_unsupported_filter(std::string_view name);
[[noreturn]] void fail_missing_filter(std::string_view name);
[[noreturn]] void fail_missing_test(std::string_view name);

// Jinja's environment.getattr / getitem: `obj.name` tries the Python attribute (str/dict/list
// methods, host object attributes) before the item; `obj[key]` tries the item first. Missing
// entries give Undefined; attributes the immutable sandbox forbids (list.append, dict.update, ...)
// are errors.
Value get_attr(const Value& obj, const std::string& name);
Value get_item(const Value& obj, const Value& key);
// Only the Python attribute (methods, host object attributes), as the `attr` filter wants.
std::optional<Value> get_python_attr(const Value& obj, const std::string& name);

// Globals every template sees: range, dict, namespace, cycler, joiner, raise_exception,
// strftime_now.
std::vector<std::pair<std::string, Value>> make_globals();

// Python generators (select, map, reverse, ...): truthy even when empty, no len(), consumed by
// iteration.
Value make_generator(std::vector<Value> items, std::string origin);

}  // namespace hearth::text::jinja
