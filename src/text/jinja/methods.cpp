// Attribute and item access as Jinja's sandboxed environment does it, and the Python methods of
// str, dict, list and tuple that templates call (`content.strip()`, `message.get('x')`, ...).
// Methods that would mutate a value are refused, as ImmutableSandboxedEnvironment refuses them.
#include <algorithm>
#include <string_view>

#include "text/jinja/builtins.h"
#include "text/jinja/objects.h"
#include "text/jinja/pystr.h"

namespace hearth::text::jinja {
namespace {

struct Method {
  std::string_view name;
  MethodFn fn;
  bool keywords = false;  // accepts keyword arguments (split, format, ...)
};

std::optional<std::string> optional_str(const Value& v, std::string_view what) {
  if (v.is_none()) return std::nullopt;
  if (!v.is_string()) fail_render("{} arg must be None or str", what);
  return v.str();
}

const std::string& require_str(const Value& v, std::string_view what) {
  if (!v.is_string()) {
    if (v.is_undefined()) fail_undefined(v);
    fail_render("{}: must be str, not {}", what, type_name(v));
  }
  return v.str();
}

std::optional<int64_t> optional_index(const Value& v) {
  if (v.is_none()) return std::nullopt;
  if (!v.is_int() && !v.is_bool()) {
    fail_render("slice indices must be integers or None or have an __index__ method");
  }
  return v.as_int();
}

int64_t require_int(const Value& v, std::string_view what) {
  if (!v.is_int() && !v.is_bool()) {
    fail_render("'{}' object cannot be interpreted as an integer ({})", type_name(v), what);
  }
  return v.as_int();
}

Value strings_to_list(std::vector<std::string> parts) {
  std::vector<Value> items;
  items.reserve(parts.size());
  for (auto& p : parts) items.emplace_back(std::move(p));
  return Value::list(std::move(items));
}

const Value kNone = Value::none();

// --- str ------------------------------------------------------------------------------------

Value str_strip_impl(const Value& self, const Args& args, py::StripSide side,
                     std::string_view name) {
  auto a = bind_args(args, name, {{"chars", kNone}});
  return Value(py::strip(self.str(), side, optional_str(a[0], name)));
}
Value str_strip(Interpreter&, const Value& self, const Args& args) {
  return str_strip_impl(self, args, py::StripSide::both, "strip");
}
Value str_lstrip(Interpreter&, const Value& self, const Args& args) {
  return str_strip_impl(self, args, py::StripSide::left, "lstrip");
}
Value str_rstrip(Interpreter&, const Value& self, const Args& args) {
  return str_strip_impl(self, args, py::StripSide::right, "rstrip");
}

Value str_split(Interpreter&, const Value& self, const Args& args) {
  auto a = bind_args(args, "split", {{"sep", kNone}, {"maxsplit", Value(-1)}});
  return strings_to_list(
      py::split(self.str(), optional_str(a[0], "split"), require_int(a[1], "maxsplit")));
}
Value str_rsplit(Interpreter&, const Value& self, const Args& args) {
  auto a = bind_args(args, "rsplit", {{"sep", kNone}, {"maxsplit", Value(-1)}});
  return strings_to_list(
      py::rsplit(self.str(), optional_str(a[0], "rsplit"), require_int(a[1], "maxsplit")));
}
Value str_splitlines(Interpreter&, const Value& self, const Args& args) {
  auto a = bind_args(args, "splitlines", {{"keepends", Value(false)}});
  return strings_to_list(py::splitlines(self.str(), truthy(a[0])));
}

// startswith/endswith: prefix may be a tuple of alternatives; start/end slice the string first.
Value str_affix(const Value& self, const Args& args, bool at_start) {
  std::string_view name = at_start ? "startswith" : "endswith";
  auto a = bind_args(args, name, {{"prefix", std::nullopt}, {"start", kNone}, {"end", kNone}});
  std::string s = self.str();
  if (!a[1].is_none() || !a[2].is_none())
    s = py::slice(s, optional_index(a[1]), optional_index(a[2]), 1);
  std::vector<Value> options = a[0].is_tuple() ? a[0].items() : std::vector<Value>{a[0]};
  for (const Value& o : options) {
    if (!o.is_string()) {
      fail_render("{} first arg must be str or a tuple of str, not {}", name, type_name(o));
    }
    const std::string& p = o.str();
    if (s.size() >= p.size() && (at_start ? s.compare(0, p.size(), p) == 0
                                          : s.compare(s.size() - p.size(), p.size(), p) == 0))
      return Value(true);
  }
  return Value(false);
}
Value str_startswith(Interpreter&, const Value& self, const Args& args) {
  return str_affix(self, args, true);
}
Value str_endswith(Interpreter&, const Value& self, const Args& args) {
  return str_affix(self, args, false);
}

Value str_upper(Interpreter&, const Value& self, const Args& args) {
  bind_args(args, "upper", {});
  return Value(py::upper(self.str()));
}
Value str_lower(Interpreter&, const Value& self, const Args& args) {
  bind_args(args, "lower", {});
  return Value(py::lower(self.str()));
}
Value str_title(Interpreter&, const Value& self, const Args& args) {
  bind_args(args, "title", {});
  return Value(py::title(self.str()));
}
Value str_capitalize(Interpreter&, const Value& self, const Args& args) {
  bind_args(args, "capitalize", {});
  return Value(py::capitalize(self.str()));
}
Value str_swapcase(Interpreter&, const Value& self, const Args& args) {
  bind_args(args, "swapcase", {});
  return Value(py::swapcase(self.str()));
}

Value str_replace(Interpreter&, const Value& self, const Args& args) {
  auto a = bind_args(args, "replace",
                     {{"old", std::nullopt}, {"new", std::nullopt}, {"count", Value(-1)}});
  return Value(py::replace(self.str(), require_str(a[0], "replace"), require_str(a[1], "replace"),
                           require_int(a[2], "count")));
}

Value str_find_impl(const Value& self, const Args& args, std::string_view name, bool reverse,
                    bool raise) {
  auto a = bind_args(args, name, {{"sub", std::nullopt}, {"start", kNone}, {"end", kNone}});
  int64_t at = py::find(self.str(), require_str(a[0], name), optional_index(a[1]),
                        optional_index(a[2]), reverse);
  if (at < 0 && raise) fail_render("substring not found");
  return Value(at);
}
Value str_find(Interpreter&, const Value& self, const Args& args) {
  return str_find_impl(self, args, "find", false, false);
}
Value str_rfind(Interpreter&, const Value& self, const Args& args) {
  return str_find_impl(self, args, "rfind", true, false);
}
Value str_index(Interpreter&, const Value& self, const Args& args) {
  return str_find_impl(self, args, "index", false, true);
}
Value str_rindex(Interpreter&, const Value& self, const Args& args) {
  return str_find_impl(self, args, "rindex", true, true);
}

Value str_count(Interpreter&, const Value& self, const Args& args) {
  auto a = bind_args(args, "count", {{"sub", std::nullopt}, {"start", kNone}, {"end", kNone}});
  std::string s = self.str();
  if (!a[1].is_none() || !a[2].is_none())
    s = py::slice(s, optional_index(a[1]), optional_index(a[2]), 1);
  return Value(py::count(s, require_str(a[0], "count")));
}

Value str_join(Interpreter&, const Value& self, const Args& args) {
  auto a = bind_args(args, "join", {{"iterable", std::nullopt}});
  std::string out;
  size_t i = 0;
  for (const Value& item : iterate(a[0])) {
    if (!item.is_string()) {
      fail_render("sequence item {}: expected str instance, {} found", i, type_name(item));
    }
    if (i++) out += self.str();
    out += item.str();
  }
  return Value(std::move(out));
}

Value str_format(Interpreter&, const Value& self, const Args& args) {
  return Value(py::str_format(self.str(), args));
}

Value str_pad_impl(const Value& self, const Args& args, std::string_view name, char align) {
  auto a = bind_args(args, name, {{"width", std::nullopt}, {"fillchar", Value(" ")}});
  const std::string& fill = require_str(a[1], name);
  if (py::codepoint_length(fill) != 1)
    fail_render("The fill character must be exactly one character long");
  return Value(py::pad(self.str(), require_int(a[0], "width"), py::decode(fill)[0], align));
}
Value str_center(Interpreter&, const Value& self, const Args& args) {
  return str_pad_impl(self, args, "center", 'c');
}
Value str_ljust(Interpreter&, const Value& self, const Args& args) {
  return str_pad_impl(self, args, "ljust", '<');
}
Value str_rjust(Interpreter&, const Value& self, const Args& args) {
  return str_pad_impl(self, args, "rjust", '>');
}

Value str_zfill(Interpreter&, const Value& self, const Args& args) {
  auto a = bind_args(args, "zfill", {{"width", std::nullopt}});
  const std::string& s = self.str();
  int64_t width = require_int(a[0], "width"), len = py::codepoint_length(s);
  if (len >= width) return self;
  bool sign = !s.empty() && (s[0] == '+' || s[0] == '-');
  return Value((sign ? s.substr(0, 1) : "") + std::string(static_cast<size_t>(width - len), '0') +
               (sign ? s.substr(1) : s));
}

Value str_partition_impl(const Value& self, const Args& args, bool reverse) {
  auto a = bind_args(args, reverse ? "rpartition" : "partition", {{"sep", std::nullopt}});
  const std::string& sep = require_str(a[0], "partition");
  if (sep.empty()) fail_render("empty separator");
  const std::string& s = self.str();
  size_t at = reverse ? s.rfind(sep) : s.find(sep);
  if (at == std::string::npos) {
    return reverse ? Value::tuple({Value(""), Value(""), self})
                   : Value::tuple({self, Value(""), Value("")});
  }
  return Value::tuple({Value(s.substr(0, at)), Value(sep), Value(s.substr(at + sep.size()))});
}
Value str_partition(Interpreter&, const Value& self, const Args& args) {
  return str_partition_impl(self, args, false);
}
Value str_rpartition(Interpreter&, const Value& self, const Args& args) {
  return str_partition_impl(self, args, true);
}

Value str_removeprefix(Interpreter&, const Value& self, const Args& args) {
  auto a = bind_args(args, "removeprefix", {{"prefix", std::nullopt}});
  const std::string& p = require_str(a[0], "removeprefix");
  const std::string& s = self.str();
  return s.compare(0, p.size(), p) == 0 ? Value(s.substr(p.size())) : self;
}
Value str_removesuffix(Interpreter&, const Value& self, const Args& args) {
  auto a = bind_args(args, "removesuffix", {{"suffix", std::nullopt}});
  const std::string& p = require_str(a[0], "removesuffix");
  const std::string& s = self.str();
  if (!p.empty() && s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0)
    return Value(s.substr(0, s.size() - p.size()));
  return self;
}

// str.isX(): true when non-empty and every character passes.
template <bool (*Pred)(char32_t)>
Value str_is(Interpreter&, const Value& self, const Args& args) {
  bind_args(args, "is", {});
  std::u32string text = py::decode(self.str());
  if (text.empty()) return Value(false);
  return Value(std::all_of(text.begin(), text.end(), Pred));
}

Value str_isascii(Interpreter&, const Value& self, const Args& args) {
  bind_args(args, "isascii", {});
  return Value(self.str_ascii());
}

// islower/isupper: at least one cased character, and no cased character of the other case.
Value str_case_check(const Value& self, bool want_lower) {
  bool any = false;
  for (char32_t c : py::decode(self.str())) {
    if (py::is_upper_char(c) || py::is_lower_char(c)) {
      if (want_lower ? py::is_upper_char(c) : py::is_lower_char(c)) return Value(false);
      any = true;
    }
  }
  return Value(any);
}
Value str_islower(Interpreter&, const Value& self, const Args&) {
  return str_case_check(self, true);
}
Value str_isupper(Interpreter&, const Value& self, const Args&) {
  return str_case_check(self, false);
}

constexpr Method kStrMethods[] = {
    {"capitalize", str_capitalize},
    {"casefold", str_lower},
    {"center", str_center},
    {"count", str_count},
    {"endswith", str_endswith},
    {"find", str_find},
    {"format", str_format, true},
    {"index", str_index},
    {"isalnum", str_is<py::is_alnum_char>},
    {"isalpha", str_is<py::is_alpha_char>},
    {"isascii", str_isascii},
    {"isdecimal", str_is<py::is_decimal_char>},
    {"isdigit", str_is<py::is_digit_char>},
    {"islower", str_islower},
    {"isnumeric", str_is<py::is_numeric_char>},
    {"isspace", str_is<py::is_space>},
    {"isupper", str_isupper},
    {"join", str_join},
    {"ljust", str_ljust},
    {"lower", str_lower},
    {"lstrip", str_lstrip},
    {"partition", str_partition},
    {"removeprefix", str_removeprefix},
    {"removesuffix", str_removesuffix},
    {"replace", str_replace},
    {"rfind", str_rfind},
    {"rindex", str_rindex},
    {"rjust", str_rjust},
    {"rpartition", str_rpartition},
    {"rsplit", str_rsplit, true},
    {"rstrip", str_rstrip},
    {"split", str_split, true},
    {"splitlines", str_splitlines, true},
    {"startswith", str_startswith},
    {"strip", str_strip},
    {"swapcase", str_swapcase},
    {"title", str_title},
    {"upper", str_upper},
    {"zfill", str_zfill},
};

// --- dict -----------------------------------------------------------------------------------

Value dict_view(const Value& self, const Args& args, DictView::Kind kind) {
  bind_args(args, "view", {});
  return Value::object(std::make_shared<DictView>(self, kind));
}
Value dict_items(Interpreter&, const Value& self, const Args& args) {
  return dict_view(self, args, DictView::Kind::items);
}
Value dict_keys(Interpreter&, const Value& self, const Args& args) {
  return dict_view(self, args, DictView::Kind::keys);
}
Value dict_values(Interpreter&, const Value& self, const Args& args) {
  return dict_view(self, args, DictView::Kind::values);
}
Value dict_get(Interpreter&, const Value& self, const Args& args) {
  auto a = bind_args(args, "get", {{"key", std::nullopt}, {"default", kNone}});
  const Value* v = self.dict_data().find(a[0]);
  return v ? *v : a[1];
}
Value same_value(Interpreter&, const Value& self, const Args& args) {
  bind_args(args, "copy", {});
  return self;  // values are immutable here, so a copy is the value itself
}

constexpr Method kDictMethods[] = {
    {"copy", same_value}, {"get", dict_get},       {"items", dict_items},
    {"keys", dict_keys},  {"values", dict_values},
};
constexpr std::string_view kDictUnsafe[] = {"clear", "pop", "popitem", "setdefault", "update"};

// --- list / tuple ---------------------------------------------------------------------------

Value seq_index(Interpreter&, const Value& self, const Args& args) {
  auto a =
      bind_args(args, "index",
                {{"value", std::nullopt}, {"start", Value(0)}, {"stop", Value(int64_t{1} << 62)}});
  const auto& items = self.items();
  auto n = static_cast<int64_t>(items.size());
  int64_t start = require_int(a[1], "start"), stop = require_int(a[2], "stop");
  if (start < 0) start = std::max<int64_t>(0, start + n);
  if (stop < 0) stop = std::max<int64_t>(0, stop + n);
  for (int64_t i = start; i < std::min(stop, n); ++i)
    if (equals(items[static_cast<size_t>(i)], a[0])) return Value(i);
  fail_render("{} is not in {}", repr(a[0]), self.is_tuple() ? "tuple" : "list");
}
Value seq_count(Interpreter&, const Value& self, const Args& args) {
  auto a = bind_args(args, "count", {{"value", std::nullopt}});
  int64_t n = 0;
  for (const Value& v : self.items()) n += equals(v, a[0]);
  return Value(n);
}

constexpr Method kListMethods[] = {
    {"copy", same_value}, {"count", seq_count}, {"index", seq_index}};
constexpr Method kTupleMethods[] = {{"count", seq_count}, {"index", seq_index}};
constexpr std::string_view kListUnsafe[] = {"append", "clear",  "extend",  "insert",
                                            "pop",    "remove", "reverse", "sort"};

template <size_t N>
const Method* find_method(const Method (&table)[N], std::string_view name) {
  for (const Method& m : table)
    if (m.name == name) return &m;
  return nullptr;
}

template <size_t N>
bool contains_name(const std::string_view (&names)[N], std::string_view name) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

// Jinja's object_type_repr, for undefined-value messages.
std::string object_description(const Value& obj) {
  if (obj.is_none()) return "'None'";
  return fmt::format("'{} object'", type_name(obj));
}

Value missing_attribute(const Value& obj, const std::string& name) {
  return Value::undefined(fmt::format("{} has no attribute '{}'", object_description(obj), name));
}

// The sandbox's unsafe_undefined: prints as nothing, fails when called or used.
Value unsafe_attribute(std::string_view type, const std::string& name) {
  return Value::undefined(
      fmt::format("access to attribute '{}' of '{}' object is unsafe.", name, type));
}

// The Python attribute of `obj` (methods and host-object attributes), without the item fallback.
std::optional<Value> python_attr(const Value& obj, const std::string& name) {
  const Method* fn = nullptr;
  switch (obj.kind()) {
    case Value::Kind::string:
      fn = find_method(kStrMethods, name);
      break;
    case Value::Kind::dict:
      if (contains_name(kDictUnsafe, name)) return unsafe_attribute("dict", name);
      fn = find_method(kDictMethods, name);
      break;
    case Value::Kind::list:
      if (obj.is_tuple()) {
        fn = find_method(kTupleMethods, name);
        break;
      }
      if (contains_name(kListUnsafe, name)) return unsafe_attribute("list", name);
      fn = find_method(kListMethods, name);
      break;
    case Value::Kind::object:
      return obj.obj().get_attr(obj, name);
    default:
      break;
  }
  if (fn) return Value::object(std::make_shared<BoundMethod>(obj, name, fn->fn, fn->keywords));
  return std::nullopt;
}

}  // namespace

std::optional<Value> get_python_attr(const Value& obj, const std::string& name) {
  return python_attr(obj, name);
}

Value get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (auto attr = python_attr(obj, name)) return *attr;
  if (obj.is_dict()) {
    if (const Value* v = obj.dict_data().find(std::string_view(name))) return *v;
  }
  return missing_attribute(obj, name);
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail_undefined(obj);
  switch (obj.kind()) {
    case Value::Kind::dict:
      if (const Value* v = obj.dict_data().find(key)) return *v;
      break;
    case Value::Kind::list:
      if (key.is_int() || key.is_bool()) {
        int64_t i = key.as_int();
        auto n = static_cast<int64_t>(obj.items().size());
        if (i < 0) i += n;
        if (i >= 0 && i < n) return obj.items()[static_cast<size_t>(i)];
      }
      break;
    case Value::Kind::string:
      if (key.is_int() || key.is_bool()) {
        if (auto c = py::char_at(obj.str(), key.as_int())) return Value(std::move(*c));
      }
      break;
    case Value::Kind::object:
      if (const auto* range = dynamic_cast<const RangeObject*>(&obj.obj())) {
        if (key.is_int() || key.is_bool()) {
          if (auto v = range->at(key.as_int())) return Value(*v);
        }
      }
      break;
    default:
      break;
  }
  if (key.is_string()) {
    if (auto attr = python_attr(obj, key.str())) return *attr;
    return missing_attribute(obj, key.str());
  }
  return Value::undefined(fmt::format("{} has no element {}", object_description(obj), repr(key)));
}

}  // namespace hearth::text::jinja
