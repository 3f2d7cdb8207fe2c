// The Jinja value model: Python's data types as templates see them (None, bool, int, float, str,
// list, tuple, dict, Jinja's Undefined, and host objects such as namespaces, loops and macros),
// with Python's truthiness, equality, ordering, str() and repr().
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hearth::text::jinja {

class Interpreter;
class Value;

// Everything that goes wrong while parsing or rendering. `line` is 0 until the innermost template
// node that knows its line catches the error on its way out and fills it in.
class TemplateError : public std::runtime_error {
 public:
  enum class Kind {
    syntax,   // the template does not parse (Jinja's TemplateSyntaxError)
    runtime,  // a type error, undefined access, unknown filter at render time, ...
    raised,   // the template called raise_exception(message)
  };
  TemplateError(Kind kind, std::string message, int line = 0)
      : std::runtime_error(message), kind(kind), line(line), message(std::move(message)) {}
  Kind kind;
  int line;
  std::string message;
};

template <typename... Args>
[[noreturn]] void fail_render(fmt::format_string<Args...> format, Args&&... args) {
  throw TemplateError(TemplateError::Kind::runtime,
                      fmt::format(format, std::forward<Args>(args)...));
}

// Shared, immutable payloads (the sandbox forbids mutating lists and dicts, so values may share
// them freely); only host objects such as namespaces carry mutable state.
struct Heap {
  virtual ~Heap() = default;
};

struct StringData final : Heap {
  explicit StringData(std::string s);
  std::string text;
  bool ascii;  // lets codepoint-indexed operations take the byte fast path
};

struct ListData final : Heap {
  std::vector<Value> items;
  bool tuple = false;
};

// A Python dict: insertion-ordered, keys compared with Python equality (1 == 1.0 == True).
struct DictData final : Heap {
  std::vector<std::pair<Value, Value>> entries;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(Value key, Value value);
};

// Call arguments, Python style.
struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

// Host objects: anything with behaviour of its own (loop, namespace, macros, bound methods,
// generators).
class Object : public Heap {
 public:
  virtual std::string type_name() const = 0;
  // Attribute lookup (`obj.name` and, failing a key, `obj['name']`); nullopt when missing.
  // `self` is the value holding this object, for attributes that are bound methods.
  virtual std::optional<Value> get_attr(const Value& self, const std::string& name) const;
  virtual bool callable() const { return false; }
  virtual Value call(Interpreter& interp, Args& args) const;
  virtual std::string repr() const;
  // Python iteration; generators are consumed by it.
  virtual bool iterable() const { return false; }
  virtual std::vector<Value> iterate() const;
  // Python's len(); nullopt when the object has none (generators).
  virtual std::optional<int64_t> length() const { return std::nullopt; }
};

class Value {
 public:
  enum class Kind : uint8_t {
    undefined,
    none,
    boolean,
    integer,
    floating,
    string,
    list,
    dict,
    object
  };

  Value() = default;  // Undefined without a hint
  Value(bool b) : kind_(Kind::boolean) { bool_ = b; }
  Value(int i) : kind_(Kind::integer) { int_ = i; }
  Value(int64_t i) : kind_(Kind::integer) { int_ = i; }
  Value(double f) : kind_(Kind::floating) { float_ = f; }
  Value(std::string s);
  Value(std::string_view s) : Value(std::string(s)) {}
  Value(const char* s) : Value(std::string(s)) {}

  // `hint` is the message an error shows when the undefined value is used ("'x' is undefined").
  static Value undefined(std::string hint);
  static Value none();
  static Value list(std::vector<Value> items);
  static Value tuple(std::vector<Value> items);
  static Value dict(DictData data);
  static Value object(std::shared_ptr<const Object> object);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::undefined; }
  bool is_none() const { return kind_ == Kind::none; }
  bool is_bool() const { return kind_ == Kind::boolean; }
  bool is_int() const { return kind_ == Kind::integer; }
  bool is_float() const { return kind_ == Kind::floating; }
  bool is_number() const {  // Python's numbers.Number: bool counts
    return kind_ == Kind::boolean || kind_ == Kind::integer || kind_ == Kind::floating;
  }
  bool is_string() const { return kind_ == Kind::string; }
  bool is_list() const { return kind_ == Kind::list && !list_data().tuple; }
  bool is_tuple() const { return kind_ == Kind::list && list_data().tuple; }
  bool is_sequence() const { return kind_ == Kind::list; }  // list or tuple
  bool is_dict() const { return kind_ == Kind::dict; }
  bool is_object() const { return kind_ == Kind::object; }

  bool as_bool() const { return bool_; }
  int64_t as_int() const { return kind_ == Kind::boolean ? int64_t{bool_} : int_; }
  double as_double() const;  // any number
  const std::string& str() const { return static_cast<const StringData&>(*heap_).text; }
  bool str_ascii() const { return static_cast<const StringData&>(*heap_).ascii; }
  const ListData& list_data() const { return static_cast<const ListData&>(*heap_); }
  const std::vector<Value>& items() const { return list_data().items; }
  const DictData& dict_data() const { return static_cast<const DictData&>(*heap_); }
  const Object& obj() const { return static_cast<const Object&>(*heap_); }
  std::shared_ptr<const Object> obj_ptr() const {
    return std::static_pointer_cast<const Object>(heap_);
  }
  std::string undefined_hint() const;
  bool same_object(const Value& other) const { return heap_ && heap_ == other.heap_; }

 private:
  Kind kind_ = Kind::undefined;
  union {
    bool bool_;
    int64_t int_ = 0;
    double float_;
  };
  std::shared_ptr<const Heap> heap_;  // string/list/dict/object payload, or the undefined hint
};

// Python's type(x).__name__ ("str", "dict", "NoneType", ...).
std::string type_name(const Value& v);

bool truthy(const Value& v);
bool equals(const Value& a, const Value& b);
// Python ordering (`<` is compare < 0); TypeError for types Python cannot order.
int compare(const Value& a, const Value& b);

// Python str() and repr(); str(Undefined) is "" as in Jinja.
std::string to_str(const Value& v);
void append_str(std::string& out, const Value& v);
std::string repr(const Value& v);

// Throws Jinja's UndefinedError with the value's hint.
[[noreturn]] void fail_undefined(const Value& v);

// Python iteration (dict → keys, str → characters, Undefined → nothing); TypeError otherwise.
std::vector<Value> iterate(const Value& v);
// Python len(); TypeError for values without one.
int64_t length(const Value& v);

Value from_json(const nlohmann::ordered_json& j);

// json.dumps(v, ensure_ascii, indent, separators, sort_keys) byte for byte.
struct JsonDumpOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // nullopt: one line
  std::optional<std::pair<std::string, std::string>> separators;
  bool sort_keys = false;
};
std::string dump_json(const Value& v, const JsonDumpOptions& options);

// Binds Python-style arguments against a parameter list (positional first, then by keyword).
struct Param {
  std::string_view name;
  std::optional<Value> default_value;  // nullopt: required
};
std::vector<Value> bind_args(const Args& args, std::string_view function,
                             std::initializer_list<Param> params);

}  // namespace hearth::text::jinja
