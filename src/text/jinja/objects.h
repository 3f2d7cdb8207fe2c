// Host objects shared by the built-ins: bound methods, builtin functions, generators, dict views
// and namespaces.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "text/jinja/value.h"

namespace hearth::text::jinja {

using MethodFn = Value (*)(Interpreter& interp, const Value& self, const Args& args);
using FunctionFn = Value (*)(Interpreter& interp, const Args& args);

// `"abc".upper` before it is called.
class BoundMethod final : public Object {
 public:
  // Most Python str/dict/list methods take positional arguments only.
  BoundMethod(Value self, std::string name, MethodFn fn, bool keywords = false)
      : self_(std::move(self)), name_(std::move(name)), fn_(fn), keywords_(keywords) {}
  std::string type_name() const override { return "builtin_function_or_method"; }
  bool callable() const override { return true; }
  Value call(Interpreter& interp, Args& args) const override {
    if (!keywords_ && !args.keyword.empty()) {
      fail_render("{}.{}() takes no keyword arguments", jinja::type_name(self_), name_);
    }
    return fn_(interp, self_, args);
  }
  std::string repr() const override {
    return fmt::format("<built-in method {} of {} object>", name_, jinja::type_name(self_));
  }

 private:
  Value self_;
  std::string name_;
  MethodFn fn_;
  bool keywords_;
};

class BuiltinFunction final : public Object {
 public:
  BuiltinFunction(std::string name, FunctionFn fn) : name_(std::move(name)), fn_(fn) {}
  std::string type_name() const override { return "function"; }
  bool callable() const override { return true; }
  Value call(Interpreter& interp, Args& args) const override { return fn_(interp, args); }
  std::string repr() const override { return fmt::format("<function {}>", name_); }

 private:
  std::string name_;
  FunctionFn fn_;
};

// A Python generator or iterator: always truthy, no len(), exhausted by iteration.
class GeneratorObject final : public Object {
 public:
  GeneratorObject(std::vector<Value> items, std::string origin)
      : items_(std::move(items)), origin_(std::move(origin)) {}
  std::string type_name() const override { return "generator"; }
  std::string repr() const override { return fmt::format("<generator object {}>", origin_); }
  bool iterable() const override { return true; }
  std::vector<Value> iterate() const override {
    std::vector<Value> rest(items_.begin() + static_cast<std::ptrdiff_t>(pos_), items_.end());
    pos_ = items_.size();
    return rest;
  }

 private:
  std::vector<Value> items_;
  mutable size_t pos_ = 0;
  std::string origin_;
};

// dict.items() / keys() / values(): iterable views with a len() (not subscriptable).
class DictView final : public Object {
 public:
  enum class Kind { items, keys, values };
  DictView(Value dict, Kind kind) : dict_(std::move(dict)), kind_(kind) {}
  std::string type_name() const override {
    return kind_ == Kind::items ? "dict_items" : kind_ == Kind::keys ? "dict_keys" : "dict_values";
  }
  bool iterable() const override { return true; }
  std::vector<Value> iterate() const override {
    std::vector<Value> out;
    for (const auto& [k, v] : dict_.dict_data().entries) {
      if (kind_ == Kind::items) {
        out.push_back(Value::tuple({k, v}));
      } else {
        out.push_back(kind_ == Kind::keys ? k : v);
      }
    }
    return out;
  }
  std::optional<int64_t> length() const override {
    return static_cast<int64_t>(dict_.dict_data().entries.size());
  }
  std::string repr() const override {
    return type_name() + "(" + jinja::repr(Value::list(iterate())) + ")";
  }

 private:
  Value dict_;
  Kind kind_;
};

// range(): iterable with a len(), indexable and sliceable, printed as Python prints it.
class RangeObject final : public Object {
 public:
  RangeObject(int64_t start, int64_t stop, int64_t step) : start_(start), stop_(stop), step_(step) {
    if (step > 0 && start < stop) count_ = (stop - start - 1) / step + 1;
    if (step < 0 && start > stop) count_ = (start - stop - 1) / -step + 1;
  }
  std::string type_name() const override { return "range"; }
  bool iterable() const override { return true; }
  std::vector<Value> iterate() const override {
    std::vector<Value> out;
    out.reserve(static_cast<size_t>(count_));
    for (int64_t i = 0; i < count_; ++i) out.emplace_back(start_ + i * step_);
    return out;
  }
  std::optional<int64_t> length() const override { return count_; }
  std::string repr() const override {
    return step_ == 1 ? fmt::format("range({}, {})", start_, stop_)
                      : fmt::format("range({}, {}, {})", start_, stop_, step_);
  }
  std::optional<int64_t> at(int64_t index) const {
    if (index < 0) index += count_;
    if (index < 0 || index >= count_) return std::nullopt;
    return start_ + index * step_;
  }
  // range(...)[a:b:c] is again a range (computed as CPython's compute_slice does).
  Value slice(int64_t slice_start, int64_t slice_stop, int64_t slice_step) const {
    return Value::object(std::make_shared<RangeObject>(
        start_ + slice_start * step_, start_ + slice_stop * step_, step_ * slice_step));
  }
  int64_t count() const { return count_; }

 private:
  int64_t start_, stop_, step_, count_ = 0;
};

// namespace(): the one mutable object templates get (`{% set ns.attr = value %}`).
class NamespaceObject final : public Object {
 public:
  explicit NamespaceObject(DictData attrs) : attrs_(std::move(attrs)) {}
  std::string type_name() const override { return "Namespace"; }
  std::optional<Value> get_attr(const Value&, const std::string& name) const override {
    if (const Value* v = attrs_.find(std::string_view(name))) return *v;
    return std::nullopt;
  }
  // A namespace can end up inside itself; Python's dict repr prints the inner one as {...}.
  std::string repr() const override {
    if (in_repr_) return "<Namespace {...}>";
    in_repr_ = true;
    struct Reset {
      bool& flag;
      ~Reset() { flag = false; }
    } reset{in_repr_};
    return "<Namespace " + jinja::repr(Value::dict(attrs_)) + ">";
  }
  void set_attr(const std::string& name, Value value) const {
    attrs_.set(Value(name), std::move(value));
  }
  // Drops the attributes, breaking any reference cycle through them (end of a render).
  void clear() const { attrs_.entries.clear(); }

 private:
  mutable DictData attrs_;
  mutable bool in_repr_ = false;
};

}  // namespace hearth::text::jinja
