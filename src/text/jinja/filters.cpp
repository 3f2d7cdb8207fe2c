// Jinja2's built-in filters (3.1 semantics) plus transformers' tojson override
// (json.dumps with ensure_ascii=False and the indent/separators/sort_keys options).
// Filters that return generators in Jinja (select, map, unique, reverse, ...) return generator
// objects here too, so truthiness and len() behave as they do under Python.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

#include "text/jinja/builtins.h"
#include "text/jinja/interpreter.h"
#include "text/jinja/objects.h"
#include "text/jinja/pystr.h"

namespace hearth::text::jinja {
namespace {

const Value kNone = Value::none();

Value lower_if_string(const Value& v) {
  return v.is_string() ? Value(py::lower(v.str())) : v;
}

// Jinja's make_attrgetter: "a.b.0" walks items (digits become indices); `default` replaces an
// undefined result.
class AttrGetter {
 public:
  AttrGetter(const Value& attribute, bool ignore_case, Value default_value = kNone)
      : ignore_case_(ignore_case), default_(std::move(default_value)) {
    if (attribute.is_none() || attribute.is_undefined()) return;
    if (!attribute.is_string()) {
      parts_.push_back(attribute);
      return;
    }
    for (const std::string& part : py::split(attribute.str(), std::string("."), -1)) {
      bool digits = !part.empty() && std::all_of(part.begin(), part.end(),
                                                 [](char c) { return c >= '0' && c <= '9'; });
      parts_.push_back(digits ? Value(static_cast<int64_t>(std::stoll(part))) : Value(part));
    }
  }
  Value operator()(const Value& item) const {
    Value v = item;
    for (const Value& part : parts_) {
      v = get_item(v, part);
      if (!default_.is_none() && v.is_undefined()) v = default_;
    }
    return ignore_case_ ? lower_if_string(v) : v;
  }

 private:
  std::vector<Value> parts_;
  bool ignore_case_;
  Value default_;
};

// make_multi_attrgetter: the sort key is always a list (one entry per comma-separated
// attribute), so that items Python cannot order but finds equal (None, Undefined) still sort.
std::function<Value(const Value&)> multi_attrgetter(const Value& attribute, bool ignore_case) {
  std::vector<AttrGetter> getters;
  if (attribute.is_string()) {
    for (const std::string& part : py::split(attribute.str(), std::string(","), -1)) {
      getters.emplace_back(Value(part), ignore_case);
    }
  } else {
    getters.emplace_back(attribute, ignore_case);
  }
  return [getters](const Value& v) {
    std::vector<Value> keys;
    for (const auto& g : getters) keys.push_back(g(v));
    return Value::list(std::move(keys));
  };
}

// Python set membership needs hashable keys.
void require_hashable(const Value& v) {
  if (v.is_list() || v.is_dict() || (v.is_object() && v.obj().type_name() == "Namespace")) {
    fail_render("unhashable type: '{}'", type_name(v));
  }
  if (v.is_tuple()) {
    for (const Value& item : v.items()) require_hashable(item);
  }
}

Value generator(std::vector<Value> items, const char* origin) {
  return Value::object(std::make_shared<GeneratorObject>(std::move(items), origin));
}

int64_t as_int_arg(const Value& v, std::string_view what) {
  if (!v.is_int() && !v.is_bool()) fail_render("{} must be an integer, not {}", what, type_name(v));
  return v.as_int();
}

// Python's sorted(): stable, and reverse=True keeps equal items in their original order.
void sort_values(std::vector<Value>& items, const std::function<Value(const Value&)>& key,
                 bool reverse) {
  std::vector<std::pair<Value, Value>> keyed;
  keyed.reserve(items.size());
  for (Value& v : items) keyed.emplace_back(key(v), std::move(v));
  std::stable_sort(keyed.begin(), keyed.end(), [reverse](const auto& a, const auto& b) {
    return reverse ? compare(b.first, a.first) < 0 : compare(a.first, b.first) < 0;
  });
  items.clear();
  for (auto& [k, v] : keyed) items.push_back(std::move(v));
}

// --- string filters -------------------------------------------------------------------------

Value f_upper(Interpreter&, const Value& v, const Args& args) {
  bind_args(args, "upper", {});
  return Value(py::upper(to_str(v)));
}
Value f_lower(Interpreter&, const Value& v, const Args& args) {
  bind_args(args, "lower", {});
  return Value(py::lower(to_str(v)));
}
Value f_capitalize(Interpreter&, const Value& v, const Args& args) {
  bind_args(args, "capitalize", {});
  return Value(py::capitalize(to_str(v)));
}

// Jinja's own title(): words start after runs of -, whitespace, (, {, [ or <.
Value f_title(Interpreter&, const Value& v, const Args& args) {
  bind_args(args, "title", {});
  std::u32string text = py::decode(to_str(v));
  std::string out;
  auto is_delim = [](char32_t c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py::is_space(c);
  };
  size_t i = 0;
  while (i < text.size()) {
    bool delim = is_delim(text[i]);
    size_t j = i;
    while (j < text.size() && is_delim(text[j]) == delim) ++j;
    std::string first;
    py::append_utf8(first, text[i]);
    out += py::upper(first);
    out += py::lower(py::encode(std::u32string_view(text).substr(i + 1, j - i - 1)));
    i = j;
  }
  return Value(std::move(out));
}

Value f_trim(Interpreter&, const Value& v, const Args& args) {
  auto a = bind_args(args, "trim", {{"chars", kNone}});
  std::optional<std::string> chars;
  if (!a[0].is_none()) chars = to_str(a[0]);
  return Value(py::strip(to_str(v), py::StripSide::both, chars));
}

Value f_replace(Interpreter&, const Value& v, const Args& args) {
  auto a =
      bind_args(args, "replace", {{"old", std::nullopt}, {"new", std::nullopt}, {"count", kNone}});
  int64_t count = a[2].is_none() ? -1 : as_int_arg(a[2], "count");
  return Value(py::replace(to_str(v), to_str(a[0]), to_str(a[1]), count));
}

Value f_center(Interpreter&, const Value& v, const Args& args) {
  auto a = bind_args(args, "center", {{"width", Value(80)}});
  return Value(py::pad(to_str(v), as_int_arg(a[0], "width"), U' ', 'c'));
}

Value f_indent(Interpreter&, const Value& v, const Args& args) {
  auto a = bind_args(args, "indent",
                     {{"width", Value(4)}, {"first", Value(false)}, {"blank", Value(false)}});
  std::string indention =
      a[0].is_string()
          ? a[0].str()
          : std::string(static_cast<size_t>(std::max<int64_t>(0, as_int_arg(a[0], "width"))), ' ');
  std::string s = to_str(v) + "\n";  // Jinja's quirk so splitlines() keeps a trailing blank line
  std::vector<std::string> lines = py::splitlines(s, false);
  std::string out;
  if (truthy(a[2])) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) out += "\n" + indention;
      out += lines[i];
    }
  } else {
    if (!lines.empty()) out = lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      out += "\n";
      if (!lines[i].empty()) out += indention;
      out += lines[i];
    }
  }
  if (truthy(a[1])) out = indention + out;
  return Value(std::move(out));
}

Value f_truncate(Interpreter&, const Value& v, const Args& args) {
  auto a = bind_args(args, "truncate",
                     {{"length", Value(255)},
                      {"killwords", Value(false)},
                      {"end", Value("...")},
                      {"leeway", kNone}});
  std::string s = to_str(v);
  int64_t length = as_int_arg(a[0], "length");
  std::string end = to_str(a[2]);
  int64_t leeway = a[3].is_none() ? 5 : as_int_arg(a[3], "leeway");
  int64_t end_len = py::codepoint_length(end);
  if (length < end_len) fail_render("expected length >= {}, got {}", end_len, length);
  if (leeway < 0) fail_render("expected leeway >= 0, got {}", leeway);
  if (py::codepoint_length(s) <= length + leeway) return Value(s);
  std::string head = py::slice(s, 0, length - end_len, 1);
  if (truthy(a[1])) return Value(head + end);
  return Value(py::rsplit(head, std::string(" "), 1)[0] + end);
}

Value f_wordcount(Interpreter&, const Value& v, const Args& args) {
  bind_args(args, "wordcount", {});
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : py::decode(to_str(v))) {
    bool w = py::is_word_char(c);
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value(n);
}

// markupsafe.escape: the five HTML-special characters.
Value f_escape(Interpreter&, const Value& v, const Args& args) {
  bind_args(args, "escape", {});
  std::string out;
  for (char c : to_str(v)) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return Value(std::move(out));
}

Value f_safe(Interpreter&, const Value& v, const Args& args) {
  bind_args(args, "safe", {});
  return Value(to_str(v));
}

Value f_striptags(Interpreter&, const Value& v, const Args& args) {
  bind_args(args, "striptags", {});
  std::string s = to_str(v), text;
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 4, "<!--") == 0) {
      size_t end = s.find("-->", i + 4);
      if (end == std::string::npos) break;
      i = end + 3;
    } else if (s[i] == '<' && s.find('>', i) != std::string::npos) {
      i = s.find('>', i) + 1;
    } else {
      text += s[i++];
    }
  }
  std::string joined;
  for (const std::string& word : py::split(text, std::nullopt, -1)) {
    if (!joined.empty()) joined += ' ';
    joined += word;
  }
  static const std::pair<std::string_view, std::string_view> kEntities[] = {
      {"&amp;", "&"},  {"&lt;", "<"},  {"&gt;", ">"},  {"&quot;", "\""},
      {"&#34;", "\""}, {"&#39;", "'"}, {"&apos;", "'"}};
  for (const auto& [entity, plain] : kEntities) joined = py::replace(joined, entity, plain, -1);
  return Value(std::move(joined));
}

Value f_format(Interpreter&, const Value& v, const Args& args) {
  if (!args.positional.empty() && !args.keyword.empty()) {
    fail_render("can't handle positional and keyword arguments at the same time");
  }
  if (!args.keyword.empty()) {
    DictData kwargs;
    for (const auto& [k, val] : args.keyword) kwargs.set(Value(k), val);
    return Value(py::percent_format(to_str(v), Value::dict(std::move(kwargs))));
  }
  return Value(py::percent_format(to_str(v), Value::tuple(args.positional)));
}

Value f_string(Interpreter&, const Value& v, const Args& args) {
  bind_args(args, "string", {});
  return Value(to_str(v));
}

// transformers' tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None,
// sort_keys=False), arguments in that order.
Value f_tojson(Interpreter&, const Value& v, const Args& args) {
  auto a = bind_args(args, "tojson",
                     {{"ensure_ascii", Value(false)},
                      {"indent", kNone},
                      {"separators", kNone},
                      {"sort_keys", Value(false)}});
  JsonDumpOptions options;
  options.ensure_ascii = truthy(a[0]);
  if (a[1].is_string()) {
    options.indent = a[1].str();
  } else if (a[1].is_int() || a[1].is_bool()) {
    options.indent = std::string(static_cast<size_t>(std::max<int64_t>(0, a[1].as_int())), ' ');
  } else if (!a[1].is_none()) {
    fail_render("indent must be an int or a string, not {}", type_name(a[1]));
  }
  if (!a[2].is_none()) {
    if (!a[2].is_sequence() || a[2].items().size() != 2 || !a[2].items()[0].is_string() ||
        !a[2].items()[1].is_string()) {
      fail_render("separators must be a pair of strings");
    }
    options.separators = std::make_pair(a[2].items()[0].str(), a[2].items()[1].str());
  }
  options.sort_keys = truthy(a[3]);
  return Value(dump_json(v, options));
}

// --- numbers --------------------------------------------------------------------------------

// Python's int(str, base): surrounding whitespace, a sign, '_' between digits, and a 0x/0o/0b
// prefix that must agree with the base (base 0 reads it).
std::optional<int64_t> parse_python_int(std::string s, int base) {
  s = py::strip(s, py::StripSide::both, std::nullopt);
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.erase(0, 1);
  }
  if (s.size() > 1 && s[0] == '0') {
    char p = static_cast<char>(s[1] | 0x20);
    int prefix_base = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
    if (prefix_base && (base == 0 || base == prefix_base)) {
      base = prefix_base;
      s.erase(0, 2);
      if (!s.empty() && s[0] == '_') s.erase(0, 1);
    }
  }
  if (base == 0) base = 10;
  std::string digits;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_' && i > 0 && i + 1 < s.size() && s[i - 1] != '_') continue;
    digits += s[i];
  }
  if (digits.empty()) return std::nullopt;
  uint64_t magnitude = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude, base);
  if (ec != std::errc() || ptr != digits.data() + digits.size()) return std::nullopt;
  if (magnitude > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + (negative ? 1 : 0)) {
    fail_render("integer overflow: hearth's Jinja integers are 64-bit");
  }
  return negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
}

// Python's float(str): decimal or exponent notation, inf/nan, '_' between digits.
std::optional<double> parse_python_float(const std::string& text) {
  std::string s = py::strip(text, py::StripSide::both, std::nullopt), clean;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      bool ok = i > 0 && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i - 1])) &&
                std::isdigit(static_cast<unsigned char>(s[i + 1]));
      if (!ok) return std::nullopt;
      continue;
    }
    clean += s[i];
  }
  std::string lower = py::lower(clean);
  std::string_view body = lower;
  bool negative = false;
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) {
    negative = body[0] == '-';
    body.remove_prefix(1);
  }
  if (body == "inf" || body == "infinity") return negative ? -HUGE_VAL : HUGE_VAL;
  if (body == "nan") return std::nan("");
  if (body.empty() || body.find_first_not_of("0123456789.e+-") != std::string_view::npos)
    return std::nullopt;
  double d = 0;
  auto [ptr, ec] = std::from_chars(body.data(), body.data() + body.size(), d);
  if (ptr != body.data() + body.size()) return std::nullopt;
  if (ec == std::errc::result_out_of_range) d = HUGE_VAL;
  return negative ? -d : d;
}

std::optional<int64_t> int_of_double(double d) {
  if (std::isnan(d)) return std::nullopt;
  if (std::isinf(d)) fail_render("cannot convert float infinity to integer");
  if (std::fabs(d) >= 9.2e18) fail_render("integer overflow: hearth's Jinja integers are 64-bit");
  return static_cast<int64_t>(d);
}

Value f_int(Interpreter&, const Value& v, const Args& args) {
  auto a = bind_args(args, "int", {{"default", Value(0)}, {"base", Value(10)}});
  int base = static_cast<int>(as_int_arg(a[1], "base"));
  if (v.is_int() || v.is_bool()) return Value(v.as_int());
  if (v.is_float()) {
    if (auto i = int_of_double(v.as_double())) return Value(*i);
    return a[0];
  }
  if (v.is_string()) {
    if (auto i = parse_python_int(v.str(), base)) return Value(*i);
    // Jinja's quirk so that "42.23"|int gives 42.
    if (auto d = parse_python_float(v.str())) {
      if (auto i = int_of_double(*d)) return Value(*i);
    }
  }
  return a[0];
}

Value f_float(Interpreter&, const Value& v, const Args& args) {
  auto a = bind_args(args, "float", {{"default", Value(0.0)}});
  if (v.is_number()) return Value(v.as_double());
  if (v.is_string()) {
    if (auto d = parse_python_float(v.str())) return Value(*d);
  }
  return a[0];
}

Value f_abs(Interpreter&, const Value& v, const Args& args) {
  bind_args(args, "abs", {});
  if (v.is_float()) return Value(std::fabs(v.as_double()));
  if (v.is_int() || v.is_bool()) {
    if (v.as_int() == std::numeric_limits<int64_t>::min()) fail_render("integer overflow");
    return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
  }
  if (v.is_undefined()) fail_undefined(v);
  fail_render("bad operand type for abs(): '{}'", type_name(v));
}

// Python's round(x, ndigits): exact decimal rounding, ties to even (printf rounds the exact
// binary value the same way).
double python_round(double x, int64_t ndigits) {
  if (!std::isfinite(x)) return x;
  if (ndigits > 300) return x;
  if (ndigits < -308) return std::copysign(0.0, x);
  if (ndigits >= 0) {
    char buf[512];
    std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(ndigits), x);
    return std::strtod(buf, nullptr);
  }
  double scale = std::pow(10.0, static_cast<double>(-ndigits));
  return std::nearbyint(x / scale) * scale;
}

Value f_round(Interpreter&, const Value& v, const Args& args) {
  auto a = bind_args(args, "round", {{"precision", Value(0)}, {"method", Value("common")}});
  int64_t precision = as_int_arg(a[0], "precision");
  std::string method = to_str(a[1]);
  if (method != "common" && method != "ceil" && method != "floor") {
    fail_render("method must be common, ceil or floor");
  }
  if (!v.is_number()) {
    if (v.is_undefined()) fail_undefined(v);
    fail_render("type {} doesn't define __round__ method", type_name(v));
  }
  if (method == "common") {
    if (!v.is_float()) {
      if (precision >= 0) return Value(v.as_int());
      double scale = std::pow(10.0, static_cast<double>(-precision));
      return Value(
          static_cast<int64_t>(std::nearbyint(static_cast<double>(v.as_int()) / scale) * scale));
    }
    return Value(python_round(v.as_double(), precision));
  }
  double scale = std::pow(10.0, static_cast<double>(precision));
  double scaled = v.as_double() * scale;
  return Value((method == "ceil" ? std::ceil(scaled) : std::floor(scaled)) / scale);
}

// --- sequences ------------------------------------------------------------------------------

Value f_length(Interpreter&, const Value& v, const Args& args) {
  bind_args(args, "length", {});
  return Value(length(v));
}

Value f_list(Interpreter&, const Value& v, const Args& args) {
  bind_args(args, "list", {});
  return Value::list(iterate(v));
}

Value f_first(Interpreter&, const Value& v, const Args& args) {
  bind_args(args, "first", {});
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Value f_last(Interpreter&, const Value& v, const Args& args) {
  bind_args(args, "last", {});
  if (v.is_object() && !v.obj().length())
    fail_render("'{}' object is not reversible", type_name(v));
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

Value f_join(Interpreter&, const Value& v, const Args& args) {
  auto a = bind_args(args, "join", {{"d", Value("")}, {"attribute", kNone}});
  std::string sep = to_str(a[0]), out;
  AttrGetter getter(a[1], false);
  bool first = true;
  for (const Value& item : iterate(v)) {
    if (!first) out += sep;
    first = false;
    append_str(out, a[1].is_none() ? item : getter(item));
  }
  return Value(std::move(out));
}

Value f_default(Interpreter&, const Value& v, const Args& args) {
  auto a = bind_args(args, "default", {{"default_value", Value("")}, {"boolean", Value(false)}});
  if (v.is_undefined() || (truthy(a[1]) && !truthy(v))) return a[0];
  return v;
}

Value f_reverse(Interpreter&, const Value& v, const Args& args) {
  bind_args(args, "reverse", {});
  if (v.is_string()) return Value(py::slice(v.str(), std::nullopt, std::nullopt, -1));
  std::vector<Value> items = iterate(v);
  std::reverse(items.begin(), items.end());
  // reversed() gives an iterator for sequences; generators fall back to a reversed list.
  bool reversible =
      v.is_sequence() || v.is_dict() || v.is_undefined() || (v.is_object() && v.obj().length());
  if (reversible) return generator(std::move(items), "reversed");
  return Value::list(std::move(items));
}

Value f_sort(Interpreter&, const Value& v, const Args& args) {
  auto a = bind_args(
      args, "sort",
      {{"reverse", Value(false)}, {"case_sensitive", Value(false)}, {"attribute", kNone}});
  std::vector<Value> items = iterate(v);
  sort_values(items, multi_attrgetter(a[2], !truthy(a[1])), truthy(a[0]));
  return Value::list(std::move(items));
}

Value f_dictsort(Interpreter&, const Value& v, const Args& args) {
  auto a = bind_args(
      args, "dictsort",
      {{"case_sensitive", Value(false)}, {"by", Value("key")}, {"reverse", Value(false)}});
  if (!v.is_dict()) fail_render("dictsort filter requires a mapping");
  std::string by = to_str(a[1]);
  if (by != "key" && by != "value") fail_render("You can only sort by either \"key\" or \"value\"");
  size_t pos = by == "key" ? 0 : 1;
  bool ignore_case = !truthy(a[0]);
  std::vector<Value> items;
  for (const auto& [k, val] : v.dict_data().entries) items.push_back(Value::tuple({k, val}));
  sort_values(
      items,
      [pos, ignore_case](const Value& item) {
        const Value& x = item.items()[pos];
        return ignore_case ? lower_if_string(x) : x;
      },
      truthy(a[2]));
  return Value::list(std::move(items));
}

Value f_items(Interpreter&, const Value& v, const Args& args) {
  bind_args(args, "items", {});
  if (v.is_undefined()) return generator({}, "items");
  if (!v.is_dict()) fail_render("Can only get item pairs from a mapping.");
  std::vector<Value> items;
  for (const auto& [k, val] : v.dict_data().entries) items.push_back(Value::tuple({k, val}));
  return generator(std::move(items), "do_items");
}

Value f_unique(Interpreter&, const Value& v, const Args& args) {
  auto a = bind_args(args, "unique", {{"case_sensitive", Value(false)}, {"attribute", kNone}});
  AttrGetter getter(a[1], !truthy(a[0]));
  std::vector<Value> seen, out;
  for (const Value& item : iterate(v)) {
    Value key = getter(item);
    require_hashable(key);
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) {
      seen.push_back(key);
      out.push_back(item);
    }
  }
  return generator(std::move(out), "do_unique");
}

Value min_max(const Value& v, const Args& args, bool want_max) {
  auto a = bind_args(args, want_max ? "max" : "min",
                     {{"case_sensitive", Value(false)}, {"attribute", kNone}});
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  AttrGetter getter(a[1], !truthy(a[0]));
  size_t best = 0;
  Value best_key = getter(items[0]);
  for (size_t i = 1; i < items.size(); ++i) {
    Value key = getter(items[i]);
    int c = compare(key, best_key);
    if (want_max ? c > 0 : c < 0) {
      best = i;
      best_key = key;
    }
  }
  return items[best];
}
Value f_min(Interpreter&, const Value& v, const Args& args) {
  return min_max(v, args, false);
}
Value f_max(Interpreter&, const Value& v, const Args& args) {
  return min_max(v, args, true);
}

Value f_sum(Interpreter&, const Value& v, const Args& args) {
  auto a = bind_args(args, "sum", {{"attribute", kNone}, {"start", Value(0)}});
  if (a[1].is_string()) fail_render("sum() can't sum strings [use ''.join(seq) instead]");
  AttrGetter getter(a[0], false);
  Value total = a[1];
  for (const Value& item : iterate(v))
    total = binary_op(BinaryOp::add, total, a[0].is_none() ? item : getter(item));
  return total;
}

Value f_batch(Interpreter&, const Value& v, const Args& args) {
  auto a = bind_args(args, "batch", {{"linecount", std::nullopt}, {"fill_with", kNone}});
  int64_t count = as_int_arg(a[0], "linecount");
  if (count <= 0) fail_render("batch linecount must be positive");
  std::vector<Value> out, tmp;
  for (const Value& item : iterate(v)) {
    if (static_cast<int64_t>(tmp.size()) == count) {
      out.push_back(Value::list(std::move(tmp)));
      tmp.clear();
    }
    tmp.push_back(item);
  }
  if (!tmp.empty()) {
    if (!a[1].is_none()) {
      while (static_cast<int64_t>(tmp.size()) < count) tmp.push_back(a[1]);
    }
    out.push_back(Value::list(std::move(tmp)));
  }
  return generator(std::move(out), "do_batch");
}

Value f_slice(Interpreter&, const Value& v, const Args& args) {
  auto a = bind_args(args, "slice", {{"slices", std::nullopt}, {"fill_with", kNone}});
  std::vector<Value> seq = iterate(v);
  int64_t slices = as_int_arg(a[0], "slices");
  if (slices <= 0) fail_render("slices must be positive");
  auto length = static_cast<int64_t>(seq.size());
  int64_t per_slice = length / slices, with_extra = length % slices, offset = 0;
  std::vector<Value> out;
  for (int64_t i = 0; i < slices; ++i) {
    int64_t start = offset + i * per_slice;
    if (i < with_extra) ++offset;
    int64_t end = offset + (i + 1) * per_slice;
    std::vector<Value> part(seq.begin() + start, seq.begin() + end);
    if (!a[1].is_none() && i >= with_extra) part.push_back(a[1]);
    out.push_back(Value::list(std::move(part)));
  }
  return generator(std::move(out), "do_slice");
}

Value f_map(Interpreter& interp, const Value& v, const Args& args) {
  std::vector<Value> out;
  const Value* attribute = nullptr;
  Value default_value = kNone;
  for (const auto& [k, val] : args.keyword) {
    if (k == "attribute") attribute = &val;
    if (k == "default") default_value = val;
  }
  if (args.positional.empty() && attribute) {
    for (const auto& [k, val] : args.keyword) {
      if (k != "attribute" && k != "default") fail_render("Unexpected keyword argument '{}'", k);
    }
    AttrGetter getter(*attribute, false, default_value);
    for (const Value& item : iterate(v)) out.push_back(getter(item));
    return generator(std::move(out), "sync_do_map");
  }
  if (args.positional.empty()) fail_render("map requires a filter argument");
  std::string name = to_str(args.positional[0]);
  Args rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  for (const Value& item : iterate(v)) out.push_back(interp.apply_filter(name, item, rest));
  return generator(std::move(out), "sync_do_map");
}

// select / reject / selectattr / rejectattr.
Value select_impl(Interpreter& interp, const Value& v, const Args& args, bool keep, bool by_attr) {
  size_t off = 0;
  std::optional<AttrGetter> getter;
  if (by_attr) {
    if (args.positional.empty()) fail_render("Missing parameter for attribute name");
    getter.emplace(args.positional[0], false);
    off = 1;
  }
  std::optional<std::string> test;
  Args test_args;
  if (args.positional.size() > off) {
    test = to_str(args.positional[off]);
    test_args.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(off) + 1,
                                args.positional.end());
  }
  test_args.keyword = args.keyword;
  std::vector<Value> out;
  for (const Value& item : iterate(v)) {
    Value subject = getter ? (*getter)(item) : item;
    bool pass = test ? interp.apply_test(*test, subject, test_args) : truthy(subject);
    if (pass == keep) out.push_back(item);
  }
  return generator(std::move(out), "select_or_reject");
}
Value f_select(Interpreter& i, const Value& v, const Args& a) {
  return select_impl(i, v, a, true, false);
}
Value f_reject(Interpreter& i, const Value& v, const Args& a) {
  return select_impl(i, v, a, false, false);
}
Value f_selectattr(Interpreter& i, const Value& v, const Args& a) {
  return select_impl(i, v, a, true, true);
}
Value f_rejectattr(Interpreter& i, const Value& v, const Args& a) {
  return select_impl(i, v, a, false, true);
}

Value f_attr(Interpreter&, const Value& v, const Args& args) {
  auto a = bind_args(args, "attr", {{"name", std::nullopt}});
  std::string name = to_str(a[0]);
  if (v.is_undefined()) fail_undefined(v);
  // Only the Python attribute: no item fallback, so attr() on a dict finds methods, not keys.
  if (auto attr = get_python_attr(v, name)) return *attr;
  return Value::undefined(fmt::format("'{} object' has no attribute '{}'", type_name(v), name));
}

Value f_pprint(Interpreter&, const Value& v, const Args& args) {
  bind_args(args, "pprint", {});
  return Value(repr(v));
}

struct FilterEntry {
  std::string_view name;
  FilterFn fn;
};

constexpr FilterEntry kFilters[] = {
    {"abs", f_abs},
    {"attr", f_attr},
    {"batch", f_batch},
    {"capitalize", f_capitalize},
    {"center", f_center},
    {"count", f_length},
    {"d", f_default},
    {"default", f_default},
    {"dictsort", f_dictsort},
    {"e", f_escape},
    {"escape", f_escape},
    {"first", f_first},
    {"float", f_float},
    {"forceescape", f_escape},
    {"format", f_format},
    {"indent", f_indent},
    {"int", f_int},
    {"items", f_items},
    {"join", f_join},
    {"last", f_last},
    {"length", f_length},
    {"list", f_list},
    {"lower", f_lower},
    {"map", f_map},
    {"max", f_max},
    {"min", f_min},
    {"pprint", f_pprint},
    {"reject", f_reject},
    {"rejectattr", f_rejectattr},
    {"replace", f_replace},
    {"reverse", f_reverse},
    {"round", f_round},
    {"safe", f_safe},
    {"select", f_select},
    {"selectattr", f_selectattr},
    {"slice", f_slice},
    {"sort", f_sort},
    {"string", f_string},
    {"striptags", f_striptags},
    {"sum", f_sum},
    {"title", f_title},
    {"tojson", f_tojson},
    {"trim", f_trim},
    {"truncate", f_truncate},
    {"unique", f_unique},
    {"upper", f_upper},
    {"wordcount", f_wordcount},
};

// Jinja filters hearth does not implement: known names, so templates that merely mention them
// in untaken branches still compile, and a clear error when they run.
constexpr std::string_view kUnsupportedFilters[] = {
    "filesizeformat", "groupby", "random", "urlencode", "urlize", "wordwrap", "xmlattr"};

}  // namespace

FilterFn find_filter(std::string_view name) {
  for (const FilterEntry& f : kFilters)
    if (f.name == name) return f.fn;
  return nullptr;
}

void fail_missing_filter(std::string_view name) {
  for (std::string_view n : kUnsupportedFilters)
    if (n == name) fail_render("the Jinja filter '{}' is not supported by hearth", name);
  fail_render("No filter named '{}' found.", name);
}

bool is_unsupported_filter(std::string_view name) {
  return std::find(std::begin(kUnsupportedFilters), std::end(kUnsupportedFilters), name) !=
         std::end(kUnsupportedFilters);
}

}  // namespace hearth::text::jinja
