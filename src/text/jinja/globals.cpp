// Jinja2's built-in tests (`is defined`, `is string`, ...) and the globals of transformers'
// chat template environment: range, dict, namespace, cycler, joiner, raise_exception and
// strftime_now.
#include <algorithm>
#include <chrono>
#include <ctime>

#include "text/jinja/builtins.h"
#include "text/jinja/interpreter.h"
#include "text/jinja/objects.h"
#include "text/jinja/pystr.h"

namespace hearth::text::jinja {
namespace {

// The sandbox refuses ranges longer than this (jinja2.sandbox.MAX_RANGE).
constexpr int64_t kMaxRange = 100000;

const Value& one_arg(const Args& args, std::string_view test) {
  if (args.positional.size() != 1 || !args.keyword.empty()) {
    fail_render("test '{}' takes exactly one argument", test);
  }
  return args.positional[0];
}

void no_args(const Args& args, std::string_view test) {
  if (!args.positional.empty() || !args.keyword.empty())
    fail_render("test '{}' takes no arguments", test);
}

bool t_defined(Interpreter&, const Value& v, const Args& a) {
  return no_args(a, "defined"), !v.is_undefined();
}
bool t_undefined(Interpreter&, const Value& v, const Args& a) {
  return no_args(a, "undefined"), v.is_undefined();
}
bool t_none(Interpreter&, const Value& v, const Args& a) {
  return no_args(a, "none"), v.is_none();
}
bool t_boolean(Interpreter&, const Value& v, const Args& a) {
  return no_args(a, "boolean"), v.is_bool();
}
bool t_true(Interpreter&, const Value& v, const Args& a) {
  return no_args(a, "true"), v.is_bool() && v.as_bool();
}
bool t_false(Interpreter&, const Value& v, const Args& a) {
  return no_args(a, "false"), v.is_bool() && !v.as_bool();
}
bool t_integer(Interpreter&, const Value& v, const Args& a) {
  return no_args(a, "integer"), v.is_int();
}
bool t_float(Interpreter&, const Value& v, const Args& a) {
  return no_args(a, "float"), v.is_float();
}
bool t_number(Interpreter&, const Value& v, const Args& a) {
  return no_args(a, "number"), v.is_number();
}
bool t_string(Interpreter&, const Value& v, const Args& a) {
  return no_args(a, "string"), v.is_string();
}
bool t_mapping(Interpreter&, const Value& v, const Args& a) {
  return no_args(a, "mapping"), v.is_dict();
}
bool t_escaped(Interpreter&, const Value&, const Args& a) {
  return no_args(a, "escaped"), false;
}

// Anything with len() and __getitem__ (Undefined has both).
bool t_sequence(Interpreter&, const Value& v, const Args& a) {
  no_args(a, "sequence");
  return v.is_string() || v.is_sequence() || v.is_dict() || v.is_undefined();
}

bool t_iterable(Interpreter&, const Value& v, const Args& a) {
  no_args(a, "iterable");
  return v.is_string() || v.is_sequence() || v.is_dict() || v.is_undefined() ||
         (v.is_object() && (v.obj().iterable() || v.obj().type_name() == "LoopContext"));
}

// Undefined defines __call__ (to raise), so callable() holds for it.
bool t_callable(Interpreter&, const Value& v, const Args& a) {
  no_args(a, "callable");
  return v.is_undefined() || (v.is_object() && v.obj().callable());
}

int64_t int_operand(const Value& v, std::string_view test) {
  if (v.is_undefined()) fail_undefined(v);
  if (!v.is_int() && !v.is_bool())
    fail_render("test '{}' needs an integer, not {}", test, type_name(v));
  return v.as_int();
}

bool t_odd(Interpreter&, const Value& v, const Args& a) {
  no_args(a, "odd");
  if (v.is_float()) return std::fmod(std::fmod(v.as_double(), 2.0) + 2.0, 2.0) == 1.0;
  return ((int_operand(v, "odd") % 2) + 2) % 2 == 1;
}

bool t_even(Interpreter&, const Value& v, const Args& a) {
  no_args(a, "even");
  if (v.is_float()) return std::fmod(v.as_double(), 2.0) == 0.0;
  return int_operand(v, "even") % 2 == 0;
}

bool t_divisibleby(Interpreter&, const Value& v, const Args& a) {
  const Value& num = one_arg(a, "divisibleby");
  return truthy(binary_op(BinaryOp::mod, v, num)) == false;
}

bool t_eq(Interpreter&, const Value& v, const Args& a) {
  return equals(v, one_arg(a, "eq"));
}
bool t_ne(Interpreter&, const Value& v, const Args& a) {
  return !equals(v, one_arg(a, "ne"));
}
bool t_lt(Interpreter&, const Value& v, const Args& a) {
  return compare(v, one_arg(a, "lt")) < 0;
}
bool t_le(Interpreter&, const Value& v, const Args& a) {
  return compare(v, one_arg(a, "le")) <= 0;
}
bool t_gt(Interpreter&, const Value& v, const Args& a) {
  return compare(v, one_arg(a, "gt")) > 0;
}
bool t_ge(Interpreter&, const Value& v, const Args& a) {
  return compare(v, one_arg(a, "ge")) >= 0;
}
bool t_in(Interpreter&, const Value& v, const Args& a) {
  return contains(one_arg(a, "in"), v);
}

// `is sameas`: Python identity; singletons and small values compare by value here.
bool t_sameas(Interpreter&, const Value& v, const Args& a) {
  const Value& other = one_arg(a, "sameas");
  if (v.kind() != other.kind()) return false;
  if (v.is_object() || v.is_sequence() || v.is_dict()) return v.same_object(other);
  return equals(v, other);
}

bool t_lower(Interpreter&, const Value& v, const Args& a) {
  no_args(a, "lower");
  std::string s = to_str(v);
  return py::lower(s) == s && py::upper(s) != s;
}
bool t_upper(Interpreter&, const Value& v, const Args& a) {
  no_args(a, "upper");
  std::string s = to_str(v);
  return py::upper(s) == s && py::lower(s) != s;
}

bool t_filter(Interpreter&, const Value& v, const Args& a) {
  no_args(a, "filter");
  return v.is_string() && find_filter(v.str()) != nullptr;
}
bool t_test(Interpreter&, const Value& v, const Args& a) {
  no_args(a, "test");
  return v.is_string() && find_test(v.str()) != nullptr;
}

struct TestEntry {
  std::string_view name;
  TestFn fn;
};

constexpr TestEntry kTests[] = {
    {"!=", t_ne},
    {"<", t_lt},
    {"<=", t_le},
    {"==", t_eq},
    {">", t_gt},
    {">=", t_ge},
    {"boolean", t_boolean},
    {"callable", t_callable},
    {"defined", t_defined},
    {"divisibleby", t_divisibleby},
    {"eq", t_eq},
    {"equalto", t_eq},
    {"escaped", t_escaped},
    {"even", t_even},
    {"false", t_false},
    {"filter", t_filter},
    {"float", t_float},
    {"ge", t_ge},
    {"greaterthan", t_gt},
    {"gt", t_gt},
    {"in", t_in},
    {"integer", t_integer},
    {"iterable", t_iterable},
    {"le", t_le},
    {"lessthan", t_lt},
    {"lower", t_lower},
    {"lt", t_lt},
    {"mapping", t_mapping},
    {"ne", t_ne},
    {"none", t_none},
    {"number", t_number},
    {"odd", t_odd},
    {"sameas", t_sameas},
    {"sequence", t_sequence},
    {"string", t_string},
    {"test", t_test},
    {"true", t_true},
    {"undefined", t_undefined},
    {"upper", t_upper},
};

// --- globals --------------------------------------------------------------------------------

int64_t range_int(const Value& v) {
  if (!v.is_int() && !v.is_bool())
    fail_render("'{}' object cannot be interpreted as an integer", type_name(v));
  return v.as_int();
}

Value g_range(Interpreter&, const Args& args) {
  if (!args.keyword.empty()) fail_render("range() takes no keyword arguments");
  const auto& p = args.positional;
  if (p.empty() || p.size() > 3)
    fail_render("range expected at most 3 arguments, got {}", p.size());
  int64_t start = 0, stop, step = 1;
  if (p.size() == 1) {
    stop = range_int(p[0]);
  } else {
    start = range_int(p[0]);
    stop = range_int(p[1]);
    if (p.size() == 3) step = range_int(p[2]);
  }
  if (step == 0) fail_render("range() arg 3 must not be zero");
  auto range = std::make_shared<RangeObject>(start, stop, step);
  if (range->count() > kMaxRange) {
    fail_render("Range too big. The sandbox blocks ranges larger than MAX_RANGE ({}).", kMaxRange);
  }
  return Value::object(std::move(range));
}

// dict(mapping_or_pairs, **kwargs) as Python's constructor.
DictData build_dict(const Args& args, std::string_view name) {
  DictData d;
  if (args.positional.size() > 1)
    fail_render("{} expected at most 1 argument, got {}", name, args.positional.size());
  if (!args.positional.empty()) {
    const Value& src = args.positional[0];
    if (src.is_dict()) {
      d = src.dict_data();
    } else {
      for (const Value& pair : iterate(src)) {
        std::vector<Value> kv = iterate(pair);
        if (kv.size() != 2)
          fail_render("dictionary update sequence element has length {}; 2 is required", kv.size());
        d.set(kv[0], kv[1]);
      }
    }
  }
  for (const auto& [k, v] : args.keyword) d.set(Value(k), v);
  return d;
}

Value g_dict(Interpreter&, const Args& args) {
  return Value::dict(build_dict(args, "dict"));
}

Value g_namespace(Interpreter& interp, const Args& args) {
  auto ns = std::make_shared<NamespaceObject>(build_dict(args, "namespace"));
  interp.track(ns);
  return Value::object(std::move(ns));
}

Value g_raise_exception(Interpreter&, const Args& args) {
  auto a = bind_args(args, "raise_exception", {{"message", std::nullopt}});
  throw TemplateError(TemplateError::Kind::raised, to_str(a[0]));
}

// datetime.now().strftime(format): the C library's strftime plus Python's own %f.
Value g_strftime_now(Interpreter&, const Args& args) {
  auto a = bind_args(args, "strftime_now", {{"format", std::nullopt}});
  if (!a[0].is_string()) fail_render("strftime() argument 1 must be str, not {}", type_name(a[0]));
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() %
      1000000;
  std::tm local{};
  localtime_r(&t, &local);
  std::string format;
  const std::string& f = a[0].str();
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == '%' && i + 1 < f.size() && f[i + 1] == 'f') {
      format += fmt::format("{:06d}", micros);
      ++i;
    } else if (f[i] == '%' && i + 1 < f.size() && f[i + 1] == '%') {
      format += "%%";
      ++i;
    } else {
      format += f[i];
    }
  }
  if (format.empty()) return Value("");
  std::string out(format.size() * 4 + 256, '\0');
  size_t n = std::strftime(out.data(), out.size(), format.c_str(), &local);
  out.resize(n);
  return Value(std::move(out));
}

class CyclerObject final : public Object {
 public:
  explicit CyclerObject(std::vector<Value> items) : items_(std::move(items)) {}
  std::string type_name() const override { return "Cycler"; }
  std::optional<Value> get_attr(const Value& self, const std::string& name) const override {
    if (name == "current") return items_[pos_];
    if (name == "items") return Value::tuple(items_);
    if (name == "next" || name == "reset") {
      MethodFn fn = name == "next" ? next : reset;
      return Value::object(std::make_shared<BoundMethod>(self, name, fn));
    }
    return std::nullopt;
  }

 private:
  static Value next(Interpreter&, const Value& self, const Args&) {
    const auto& c = static_cast<const CyclerObject&>(self.obj());
    Value v = c.items_[c.pos_];
    c.pos_ = (c.pos_ + 1) % c.items_.size();
    return v;
  }
  static Value reset(Interpreter&, const Value& self, const Args&) {
    static_cast<const CyclerObject&>(self.obj()).pos_ = 0;
    return Value::none();
  }
  std::vector<Value> items_;
  mutable size_t pos_ = 0;
};

Value g_cycler(Interpreter&, const Args& args) {
  if (args.positional.empty()) fail_render("at least one item has to be provided");
  return Value::object(std::make_shared<CyclerObject>(args.positional));
}

class JoinerObject final : public Object {
 public:
  explicit JoinerObject(std::string sep) : sep_(std::move(sep)) {}
  std::string type_name() const override { return "Joiner"; }
  bool callable() const override { return true; }
  Value call(Interpreter&, Args&) const override {
    if (!used_) {
      used_ = true;
      return Value("");
    }
    return Value(sep_);
  }

 private:
  std::string sep_;
  mutable bool used_ = false;
};

Value g_joiner(Interpreter&, const Args& args) {
  auto a = bind_args(args, "joiner", {{"sep", Value(", ")}});
  return Value::object(std::make_shared<JoinerObject>(to_str(a[0])));
}

}  // namespace

TestFn find_test(std::string_view name) {
  for (const TestEntry& t : kTests)
    if (t.name == name) return t.fn;
  return nullptr;
}

void fail_missing_test(std::string_view name) {
  fail_render("No test named '{}' found.", name);
}

std::vector<std::pair<std::string, Value>> make_globals() {
  auto fn = [](const char* name, FunctionFn f) {
    return std::make_pair(std::string(name),
                          Value::object(std::make_shared<BuiltinFunction>(name, f)));
  };
  return {
      fn("range", g_range),
      fn("dict", g_dict),
      fn("namespace", g_namespace),
      fn("cycler", g_cycler),
      fn("joiner", g_joiner),
      fn("raise_exception", g_raise_exception),
      fn("strftime_now", g_strftime_now),
  };
}

Value make_generator(std::vector<Value> items, std::string origin) {
  return Value::object(std::make_shared<GeneratorObject>(std::move(items), std::move(origin)));
}

}  // namespace hearth::text::jinja
