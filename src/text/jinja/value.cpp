// Python semantics for template values: truthiness, ==, ordering, str()/repr(), iteration, len(),
// and json.dumps, so that what a template prints matches what Jinja2 prints byte for byte.
#include "text/jinja/value.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "text/jinja/pystr.h"

namespace hearth::text::jinja {

StringData::StringData(std::string s) : text(std::move(s)), ascii(py::is_ascii(text)) {}

const Value* DictData::find(const Value& key) const {
  if (key.is_string()) return find(std::string_view(key.str()));
  for (const auto& [k, v] : entries)
    if (equals(k, key)) return &v;
  return nullptr;
}

const Value* DictData::find(std::string_view key) const {
  for (const auto& [k, v] : entries)
    if (k.is_string() && k.str() == key) return &v;
  return nullptr;
}

void DictData::set(Value key, Value value) {
  for (auto& [k, v] : entries) {
    if (equals(k, key)) {
      v = std::move(value);
      return;
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
}

std::optional<Value> Object::get_attr(const Value&, const std::string&) const {
  return std::nullopt;
}

Value Object::call(Interpreter&, Args&) const {
  fail_render("'{}' object is not callable", type_name());
}

std::string Object::repr() const {
  return fmt::format("<{} object>", type_name());
}

std::vector<Value> Object::iterate() const {
  fail_render("'{}' object is not iterable", type_name());
}

Value::Value(std::string s) : kind_(Kind::string) {
  heap_ = std::make_shared<StringData>(std::move(s));
}

Value Value::undefined(std::string hint) {
  Value v;
  if (!hint.empty()) v.heap_ = std::make_shared<StringData>(std::move(hint));
  return v;
}

Value Value::none() {
  Value v;
  v.kind_ = Kind::none;
  return v;
}

Value Value::list(std::vector<Value> items) {
  auto data = std::make_shared<ListData>();
  data->items = std::move(items);
  Value v;
  v.kind_ = Kind::list;
  v.heap_ = std::move(data);
  return v;
}

Value Value::tuple(std::vector<Value> items) {
  auto data = std::make_shared<ListData>();
  data->items = std::move(items);
  data->tuple = true;
  Value v;
  v.kind_ = Kind::list;
  v.heap_ = std::move(data);
  return v;
}

Value Value::dict(DictData data) {
  Value v;
  v.kind_ = Kind::dict;
  v.heap_ = std::make_shared<DictData>(std::move(data));
  return v;
}

Value Value::object(std::shared_ptr<const Object> object) {
  Value v;
  v.kind_ = Kind::object;
  v.heap_ = std::move(object);
  return v;
}

double Value::as_double() const {
  switch (kind_) {
    case Kind::boolean:
      return bool_ ? 1.0 : 0.0;
    case Kind::integer:
      return static_cast<double>(int_);
    case Kind::floating:
      return float_;
    default:
      return 0.0;
  }
}

std::string Value::undefined_hint() const {
  if (kind_ == Kind::undefined && heap_) return static_cast<const StringData&>(*heap_).text;
  return "value is undefined";
}

std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::undefined:
      return "Undefined";
    case Value::Kind::none:
      return "NoneType";
    case Value::Kind::boolean:
      return "bool";
    case Value::Kind::integer:
      return "int";
    case Value::Kind::floating:
      return "float";
    case Value::Kind::string:
      return "str";
    case Value::Kind::list:
      return v.is_tuple() ? "tuple" : "list";
    case Value::Kind::dict:
      return "dict";
    case Value::Kind::object:
      return v.obj().type_name();
  }
  return "object";
}

void fail_undefined(const Value& v) {
  fail_render("{}", v.undefined_hint());
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::undefined:
    case Value::Kind::none:
      return false;
    case Value::Kind::boolean:
      return v.as_bool();
    case Value::Kind::integer:
      return v.as_int() != 0;
    case Value::Kind::floating:
      return v.as_double() != 0.0;
    case Value::Kind::string:
      return !v.str().empty();
    case Value::Kind::list:
      return !v.items().empty();
    case Value::Kind::dict:
      return !v.dict_data().entries.empty();
    case Value::Kind::object: {
      auto n = v.obj().length();
      return !n || *n != 0;
    }
  }
  return false;
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::undefined:
    case Value::Kind::none:
      return true;
    case Value::Kind::string:
      return a.str() == b.str();
    case Value::Kind::list: {
      if (a.is_tuple() != b.is_tuple() || a.items().size() != b.items().size()) return false;
      for (size_t i = 0; i < a.items().size(); ++i)
        if (!equals(a.items()[i], b.items()[i])) return false;
      return true;
    }
    case Value::Kind::dict: {
      const auto& x = a.dict_data().entries;
      if (x.size() != b.dict_data().entries.size()) return false;
      for (const auto& [k, v] : x) {
        const Value* other = b.dict_data().find(k);
        if (!other || !equals(v, *other)) return false;
      }
      return true;
    }
    case Value::Kind::object:
      return a.same_object(b);
    default:
      return false;
  }
}

int compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      double x = a.as_double(), y = b.as_double();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    int64_t x = a.as_int(), y = b.as_int();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    int c = a.str().compare(b.str());  // UTF-8 byte order is codepoint order
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_sequence() && b.is_sequence() && a.is_tuple() == b.is_tuple()) {
    const auto& x = a.items();
    const auto& y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i)
      if (!equals(x[i], y[i])) return compare(x[i], y[i]);
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  fail_render("'<' not supported between instances of '{}' and '{}'", type_name(a), type_name(b));
}

namespace {

void append_repr(std::string& out, const Value& v) {
  switch (v.kind()) {
    case Value::Kind::undefined:
      out += "Undefined";
      break;
    case Value::Kind::none:
      out += "None";
      break;
    case Value::Kind::boolean:
      out += v.as_bool() ? "True" : "False";
      break;
    case Value::Kind::integer:
      out += std::to_string(v.as_int());
      break;
    case Value::Kind::floating:
      out += py::float_repr(v.as_double());
      break;
    case Value::Kind::string:
      out += py::repr_string(v.str());
      break;
    case Value::Kind::list: {
      const auto& items = v.items();
      out += v.is_tuple() ? '(' : '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        append_repr(out, items[i]);
      }
      if (v.is_tuple() && items.size() == 1) out += ',';
      out += v.is_tuple() ? ')' : ']';
      break;
    }
    case Value::Kind::dict: {
      out += '{';
      bool first = true;
      for (const auto& [k, val] : v.dict_data().entries) {
        if (!first) out += ", ";
        first = false;
        append_repr(out, k);
        out += ": ";
        append_repr(out, val);
      }
      out += '}';
      break;
    }
    case Value::Kind::object:
      out += v.obj().repr();
      break;
  }
}

}  // namespace

void append_str(std::string& out, const Value& v) {
  switch (v.kind()) {
    case Value::Kind::undefined:
      break;
    case Value::Kind::string:
      out += v.str();
      break;
    default:
      append_repr(out, v);
  }
}

std::string to_str(const Value& v) {
  if (v.is_string()) return v.str();
  std::string out;
  append_str(out, v);
  return out;
}

std::string repr(const Value& v) {
  std::string out;
  append_repr(out, v);
  return out;
}

std::vector<Value> iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::undefined:
      return {};
    case Value::Kind::list:
      return v.items();
    case Value::Kind::dict: {
      std::vector<Value> keys;
      keys.reserve(v.dict_data().entries.size());
      for (const auto& [k, val] : v.dict_data().entries) keys.push_back(k);
      return keys;
    }
    case Value::Kind::string: {
      std::vector<Value> chars;
      const std::string& s = v.str();
      if (v.str_ascii()) {
        for (char c : s) chars.emplace_back(std::string(1, c));
      } else {
        for (char32_t c : py::decode(s)) {
          std::string one;
          py::append_utf8(one, c);
          chars.emplace_back(std::move(one));
        }
      }
      return chars;
    }
    case Value::Kind::object:
      if (v.obj().iterable()) return v.obj().iterate();
      [[fallthrough]];
    default:
      fail_render("'{}' object is not iterable", type_name(v));
  }
}

int64_t length(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::undefined:
      return 0;
    case Value::Kind::string:
      return v.str_ascii() ? static_cast<int64_t>(v.str().size()) : py::codepoint_length(v.str());
    case Value::Kind::list:
      return static_cast<int64_t>(v.items().size());
    case Value::Kind::dict:
      return static_cast<int64_t>(v.dict_data().entries.size());
    case Value::Kind::object:
      if (auto n = v.obj().length()) return *n;
      [[fallthrough]];
    default:
      fail_render("object of type '{}' has no len()", type_name(v));
  }
}

Value from_json(const nlohmann::ordered_json& j) {
  using Type = nlohmann::ordered_json::value_t;
  switch (j.type()) {
    case Type::null:
      return Value::none();
    case Type::boolean:
      return Value(j.get<bool>());
    case Type::number_integer:
      return Value(j.get<int64_t>());
    case Type::number_unsigned: {
      auto u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        return Value(static_cast<int64_t>(u));
      return Value(static_cast<double>(u));  // beyond int64: Python would keep it exact
    }
    case Type::number_float:
      return Value(j.get<double>());
    case Type::string:
      return Value(j.get_ref<const std::string&>());
    case Type::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& item : j) items.push_back(from_json(item));
      return Value::list(std::move(items));
    }
    case Type::object: {
      DictData dict;
      dict.entries.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it)
        dict.entries.emplace_back(Value(it.key()), from_json(it.value()));
      return Value::dict(std::move(dict));
    }
    default:
      fail_render("unsupported JSON value of type {}", j.type_name());
  }
}

namespace {

void dump_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  auto escape_unit = [&](unsigned unit) { out += fmt::format("\\u{:04x}", unit); };
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    if (c < 0x20 || (ensure_ascii && c == 0x7F)) {
      escape_unit(c);
    } else if (c < 0x80 || !ensure_ascii) {
      out += static_cast<char>(c);
    } else {
      size_t j = i + 1;
      while (j < s.size() && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) ++j;
      for (char32_t cp : py::decode(s.substr(i, j - i))) {
        if (cp >= 0x10000) {
          cp -= 0x10000;
          escape_unit(0xD800 + (cp >> 10));
          escape_unit(0xDC00 + (cp & 0x3FF));
        } else {
          escape_unit(cp);
        }
      }
      i = j - 1;
    }
  }
  out += '"';
}

std::string json_float(double d) {
  if (d != d) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return py::float_repr(d);
}

std::string json_key(const Value& k) {
  switch (k.kind()) {
    case Value::Kind::string:
      return k.str();
    case Value::Kind::boolean:
      return k.as_bool() ? "true" : "false";
    case Value::Kind::none:
      return "null";
    case Value::Kind::integer:
      return std::to_string(k.as_int());
    case Value::Kind::floating:
      return json_float(k.as_double());
    default:
      fail_render("keys must be str, int, float, bool or None, not {}", type_name(k));
  }
}

struct JsonWriter {
  const JsonDumpOptions& options;
  std::string item_separator;
  std::string key_separator;
  std::string out;
  int depth = 0;

  void newline(int level) {
    out += '\n';
    for (int i = 0; i < level; ++i) out += *options.indent;
  }

  void write(const Value& v, int level) {
    if (++depth > 1000) fail_render("maximum recursion depth exceeded while encoding JSON");
    switch (v.kind()) {
      case Value::Kind::none:
        out += "null";
        break;
      case Value::Kind::boolean:
        out += v.as_bool() ? "true" : "false";
        break;
      case Value::Kind::integer:
        out += std::to_string(v.as_int());
        break;
      case Value::Kind::floating:
        out += json_float(v.as_double());
        break;
      case Value::Kind::string:
        dump_string(out, v.str(), options.ensure_ascii);
        break;
      case Value::Kind::list: {
        const auto& items = v.items();
        if (items.empty()) {
          out += "[]";
          break;
        }
        out += '[';
        for (size_t i = 0; i < items.size(); ++i) {
          if (i) out += item_separator;
          if (options.indent) newline(level + 1);
          write(items[i], level + 1);
        }
        if (options.indent) newline(level);
        out += ']';
        break;
      }
      case Value::Kind::dict: {
        std::vector<std::pair<Value, Value>> entries = v.dict_data().entries;
        if (entries.empty()) {
          out += "{}";
          break;
        }
        if (options.sort_keys) {
          std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
            return compare(a.first, b.first) < 0;
          });
        }
        out += '{';
        bool first = true;
        for (const auto& [k, val] : entries) {
          if (!first) out += item_separator;
          first = false;
          if (options.indent) newline(level + 1);
          dump_string(out, json_key(k), options.ensure_ascii);
          out += key_separator;
          write(val, level + 1);
        }
        if (options.indent) newline(level);
        out += '}';
        break;
      }
      default:
        fail_render("Object of type {} is not JSON serializable", type_name(v));
    }
    --depth;
  }
};

}  // namespace

std::string dump_json(const Value& v, const JsonDumpOptions& options) {
  JsonWriter writer{options, options.indent ? "," : ", ", ": ", {}};
  if (options.separators) {
    writer.item_separator = options.separators->first;
    writer.key_separator = options.separators->second;
  }
  writer.write(v, 0);
  return std::move(writer.out);
}

std::vector<Value> bind_args(const Args& args, std::string_view function,
                             std::initializer_list<Param> params) {
  std::vector<std::optional<Value>> bound(params.size());
  if (args.positional.size() > params.size()) {
    fail_render("{}() takes at most {} argument(s) ({} given)", function, params.size(),
                args.positional.size());
  }
  for (size_t i = 0; i < args.positional.size(); ++i) bound[i] = args.positional[i];
  for (const auto& [name, value] : args.keyword) {
    size_t i = 0;
    for (const Param& p : params) {
      if (p.name == name) break;
      ++i;
    }
    if (i == params.size())
      fail_render("{}() got an unexpected keyword argument '{}'", function, name);
    if (bound[i]) fail_render("{}() got multiple values for argument '{}'", function, name);
    bound[i] = value;
  }
  std::vector<Value> out;
  out.reserve(params.size());
  size_t i = 0;
  for (const Param& p : params) {
    if (bound[i]) {
      out.push_back(std::move(*bound[i]));
    } else if (p.default_value) {
      out.push_back(*p.default_value);
    } else {
      fail_render("{}() missing required argument '{}'", function, p.name);
    }
    ++i;
  }
  return out;
}

}  // namespace hearth::text::jinja
