// The template evaluator. Scoping follows what Jinja2's compiler produces: every for-loop
// iteration starts from a fresh scope over the enclosing one (so `{% set %}` inside a loop never
// leaks out, hence `namespace()`), macros see the scope they were defined in at call time, and
// set/filter blocks, call blocks and {% generation %} bodies render in scopes of their own.
#include "text/jinja/interpreter.h"

#include <cmath>
#include <limits>

#include "text/jinja/builtins.h"
#include "text/jinja/objects.h"
#include "text/jinja/pystr.h"

namespace hearth::text::jinja {
namespace {

// Python would hit its recursion limit well before this many nested macro calls; the cap keeps
// a runaway template from exhausting the C++ stack.
constexpr int kMaxCallDepth = 256;
// Refuse to build strings and lists beyond this size (Python would eventually MemoryError).
constexpr int64_t kMaxRepeatBytes = int64_t{1} << 28;

[[noreturn]] void int_overflow() {
  fail_render("integer overflow: hearth's Jinja integers are 64-bit");
}

// The `loop` variable. One object per loop whose position moves, as Jinja's LoopContext.
class LoopObject final : public Object {
 public:
  explicit LoopObject(std::vector<Value> items) : items_(std::move(items)) {}
  std::string type_name() const override { return "LoopContext"; }
  std::string repr() const override {
    return fmt::format("<LoopContext {}/{}>", index_ + 1, items_.size());
  }
  void set_index(size_t i) const { index_ = i; }

  std::optional<Value> get_attr(const Value& self, const std::string& name) const override {
    auto n = static_cast<int64_t>(items_.size());
    auto i = static_cast<int64_t>(index_);
    if (name == "index") return Value(i + 1);
    if (name == "index0") return Value(i);
    if (name == "revindex") return Value(n - i);
    if (name == "revindex0") return Value(n - i - 1);
    if (name == "first") return Value(i == 0);
    if (name == "last") return Value(i == n - 1);
    if (name == "length") return Value(n);
    if (name == "depth") return Value(1);
    if (name == "depth0") return Value(0);
    if (name == "previtem") {
      if (i == 0) return Value::undefined("there is no previous item");
      return items_[index_ - 1];
    }
    if (name == "nextitem") {
      if (i + 1 >= n) return Value::undefined("there is no next item");
      return items_[index_ + 1];
    }
    if (name == "cycle" || name == "changed") {
      return Value::object(std::make_shared<LoopMethod>(self, name == "cycle"));
    }
    return std::nullopt;
  }

 private:
  class LoopMethod final : public Object {
   public:
    LoopMethod(Value loop, bool cycle) : loop_(std::move(loop)), cycle_(cycle) {}
    std::string type_name() const override { return "method"; }
    bool callable() const override { return true; }
    Value call(Interpreter&, Args& args) const override {
      const auto& loop = static_cast<const LoopObject&>(loop_.obj());
      if (cycle_) {
        if (args.positional.empty()) fail_render("no items for cycling given");
        return args.positional[loop.index_ % args.positional.size()];
      }
      Value current = Value::list(args.positional);
      if (loop.last_changed_ && equals(*loop.last_changed_, current)) return Value(false);
      loop.last_changed_ = current;
      return Value(true);
    }

   private:
    Value loop_;
    bool cycle_;
  };

  std::vector<Value> items_;
  mutable size_t index_ = 0;
  mutable std::optional<Value> last_changed_;
};

// Wraps a __builtin_*_overflow result: `r` is read only after the builtin has written it.
#define HEARTH_CHECKED(op, a, b)                    \
  [&] {                                             \
    int64_t checked_result_ = 0;                    \
    if (op(a, b, &checked_result_)) int_overflow(); \
    return checked_result_;                         \
  }()

int64_t floor_div(int64_t a, int64_t b) {
  if (b == 0) fail_render("integer division or modulo by zero");
  if (a == std::numeric_limits<int64_t>::min() && b == -1) int_overflow();
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t floor_mod(int64_t a, int64_t b) {
  if (b == 0) fail_render("integer division or modulo by zero");
  if (b == -1) return 0;
  int64_t m = a % b;
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}

// CPython's float_divmod.
std::pair<double, double> float_divmod(double vx, double wx) {
  if (wx == 0.0) fail_render("float division by zero");
  double mod = std::fmod(vx, wx);
  double div = (vx - mod) / wx;
  if (mod != 0.0) {
    if ((wx < 0) != (mod < 0)) {
      mod += wx;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, wx);
  }
  double floordiv;
  if (div != 0.0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, vx / wx);
  }
  return {floordiv, mod};
}

const char* op_symbol(BinaryOp op) {
  switch (op) {
    case BinaryOp::add:
      return "+";
    case BinaryOp::sub:
      return "-";
    case BinaryOp::mul:
      return "*";
    case BinaryOp::div:
      return "/";
    case BinaryOp::floordiv:
      return "//";
    case BinaryOp::mod:
      return "%";
    case BinaryOp::pow:
      return "** or pow()";
  }
  return "?";
}

Value repeat(const Value& seq, int64_t times) {
  if (times <= 0)
    return seq.is_string() ? Value("") : (seq.is_tuple() ? Value::tuple({}) : Value::list({}));
  if (seq.is_string()) {
    const std::string& s = seq.str();
    if (static_cast<int64_t>(s.size()) * times > kMaxRepeatBytes)
      fail_render("string repetition too large");
    std::string out;
    out.reserve(s.size() * static_cast<size_t>(times));
    for (int64_t i = 0; i < times; ++i) out += s;
    return Value(std::move(out));
  }
  const auto& items = seq.items();
  if (static_cast<int64_t>(items.size()) * times > kMaxRepeatBytes / 32)
    fail_render("list repetition too large");
  std::vector<Value> out;
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), items.begin(), items.end());
  return seq.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

}  // namespace

const Value* Frame::find(std::string_view name) const {
  for (const Frame* f = this; f; f = f->parent.get()) {
    for (const auto& [k, v] : f->vars)
      if (k == name) return &v;
  }
  return nullptr;
}

void Frame::set(std::string_view name, Value value) {
  for (auto& [k, v] : vars) {
    if (k == name) {
      v = std::move(value);
      return;
    }
  }
  vars.emplace_back(std::string(name), std::move(value));
}

Value MacroObject::call(Interpreter& interp, Args& args) const {
  return interp.invoke_macro(*this, args);
}

std::string MacroObject::repr() const {
  return fmt::format("<Macro '{}'>", node->name);
}

std::optional<Value> MacroObject::get_attr(const Value&, const std::string& name) const {
  if (name == "name") return Value(node->name);
  if (name == "arguments") {
    std::vector<Value> names;
    for (const auto& p : node->params) names.emplace_back(p.name);
    return Value::tuple(std::move(names));
  }
  if (name == "catch_kwargs") return Value(node->uses_kwargs);
  if (name == "catch_varargs") return Value(node->uses_varargs);
  if (name == "caller") return Value(node->uses_caller);
  return std::nullopt;
}

Value binary_op(BinaryOp op, const Value& a, const Value& b) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  bool numbers = a.is_number() && b.is_number();
  bool floats = numbers && (a.is_float() || b.is_float());
  switch (op) {
    case BinaryOp::add:
      if (floats) return Value(a.as_double() + b.as_double());
      if (numbers) return Value(HEARTH_CHECKED(__builtin_add_overflow, a.as_int(), b.as_int()));
      if (a.is_string() && b.is_string()) return Value(a.str() + b.str());
      if (a.is_sequence() && b.is_sequence() && a.is_tuple() == b.is_tuple()) {
        std::vector<Value> items = a.items();
        items.insert(items.end(), b.items().begin(), b.items().end());
        return a.is_tuple() ? Value::tuple(std::move(items)) : Value::list(std::move(items));
      }
      if (a.is_string() || a.is_sequence()) {
        fail_render("can only concatenate {} (not \"{}\") to {}", type_name(a), type_name(b),
                    type_name(a));
      }
      break;
    case BinaryOp::sub:
      if (floats) return Value(a.as_double() - b.as_double());
      if (numbers) return Value(HEARTH_CHECKED(__builtin_sub_overflow, a.as_int(), b.as_int()));
      break;
    case BinaryOp::mul:
      if (floats) return Value(a.as_double() * b.as_double());
      if (numbers) return Value(HEARTH_CHECKED(__builtin_mul_overflow, a.as_int(), b.as_int()));
      if ((a.is_string() || a.is_sequence()) && (b.is_int() || b.is_bool()))
        return repeat(a, b.as_int());
      if ((b.is_string() || b.is_sequence()) && (a.is_int() || a.is_bool()))
        return repeat(b, a.as_int());
      break;
    case BinaryOp::div:
      if (numbers) {
        if (b.as_double() == 0.0) fail_render("division by zero");
        return Value(a.as_double() / b.as_double());
      }
      break;
    case BinaryOp::floordiv:
      if (floats) return Value(float_divmod(a.as_double(), b.as_double()).first);
      if (numbers) return Value(floor_div(a.as_int(), b.as_int()));
      break;
    case BinaryOp::mod:
      if (floats) return Value(float_divmod(a.as_double(), b.as_double()).second);
      if (numbers) return Value(floor_mod(a.as_int(), b.as_int()));
      if (a.is_string()) return Value(py::percent_format(a.str(), b));
      break;
    case BinaryOp::pow:
      if (numbers && !floats && b.as_int() >= 0) {
        int64_t base = a.as_int(), exp = b.as_int(), r = 1;
        while (exp > 0) {
          if (exp & 1) r = HEARTH_CHECKED(__builtin_mul_overflow, r, base);
          exp >>= 1;
          if (exp > 0) base = HEARTH_CHECKED(__builtin_mul_overflow, base, base);
        }
        return Value(r);
      }
      if (numbers) {
        double x = a.as_double(), y = b.as_double();
        if (x == 0.0 && y < 0) fail_render("0.0 cannot be raised to a negative power");
        if (x < 0 && y != std::floor(y)) fail_render("complex results are not supported");
        return Value(std::pow(x, y));
      }
      break;
  }
  fail_render("unsupported operand type(s) for {}: '{}' and '{}'", op_symbol(op), type_name(a),
              type_name(b));
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::string:
      if (!item.is_string()) {
        if (item.is_undefined()) fail_undefined(item);
        fail_render("'in <string>' requires string as left operand, not {}", type_name(item));
      }
      return container.str().find(item.str()) != std::string::npos;
    case Value::Kind::list:
      for (const Value& v : container.items())
        if (equals(v, item)) return true;
      return false;
    case Value::Kind::dict:
      return container.dict_data().find(item) != nullptr;
    case Value::Kind::undefined:
      return false;
    case Value::Kind::object:
      if (container.obj().iterable()) {
        for (const Value& v : container.obj().iterate())
          if (equals(v, item)) return true;
        return false;
      }
      [[fallthrough]];
    default:
      fail_render("argument of type '{}' is not iterable", type_name(container));
  }
}

Interpreter::~Interpreter() {
  for (const auto& ns : namespaces_) ns->clear();
}

void Interpreter::render(const Body& body, std::string& out) {
  auto top = std::make_shared<Frame>(globals_);
  exec_body(body, top, out);
}

Interpreter::Flow Interpreter::exec_body(const Body& body, const FramePtr& frame,
                                         std::string& out) {
  for (const StmtPtr& stmt : body) {
    Flow flow = exec(*stmt, frame, out);
    if (flow != Flow::normal) return flow;
  }
  return Flow::normal;
}

Interpreter::Flow Interpreter::exec(const Stmt& stmt, const FramePtr& frame, std::string& out) {
  try {
    switch (stmt.kind) {
      case StmtKind::text:
        out += static_cast<const TextStmt&>(stmt).text;
        break;
      case StmtKind::output:
        append_str(out, eval(*static_cast<const OutputStmt&>(stmt).expr, frame));
        break;
      case StmtKind::if_: {
        const auto& node = static_cast<const IfStmt&>(stmt);
        for (const auto& [test, body] : node.branches) {
          if (truthy(eval(*test, frame))) return exec_body(body, frame, out);
        }
        return exec_body(node.else_body, frame, out);
      }
      case StmtKind::for_:
        exec_for(static_cast<const ForStmt&>(stmt), frame, out);
        break;
      case StmtKind::set: {
        const auto& node = static_cast<const SetStmt&>(stmt);
        assign(node.target, eval(*node.value, frame), *frame);
        break;
      }
      case StmtKind::set_block: {
        const auto& node = static_cast<const SetBlockStmt&>(stmt);
        std::string text;
        exec_body(node.body, std::make_shared<Frame>(frame), text);
        Value value(std::move(text));
        if (node.filter) value = eval_filter_chain(*node.filter, value, frame);
        assign(node.target, value, *frame);
        break;
      }
      case StmtKind::macro: {
        const auto& node = static_cast<const MacroStmt&>(stmt);
        frame->set(node.name, Value::object(std::make_shared<MacroObject>(&node, frame, false)));
        break;
      }
      case StmtKind::call_block:
        exec_call_block(static_cast<const CallBlockStmt&>(stmt), frame, out);
        break;
      case StmtKind::filter_block: {
        const auto& node = static_cast<const FilterBlockStmt&>(stmt);
        std::string text;
        exec_body(node.body, std::make_shared<Frame>(frame), text);
        append_str(out, eval_filter_chain(*node.filter, Value(std::move(text)), frame));
        break;
      }
      case StmtKind::with: {
        const auto& node = static_cast<const WithStmt&>(stmt);
        auto inner = std::make_shared<Frame>(frame);
        for (const auto& [target, value] : node.assignments)
          assign(target, eval(*value, frame), *inner);
        return exec_body(node.body, inner, out);
      }
      case StmtKind::break_:
        return Flow::break_loop;
      case StmtKind::continue_:
        return Flow::continue_loop;
      case StmtKind::scope:
        return exec_body(static_cast<const ScopeStmt&>(stmt).body, std::make_shared<Frame>(frame),
                         out);
    }
  } catch (TemplateError& e) {
    if (e.line == 0) e.line = stmt.line;
    throw;
  }
  return Flow::normal;
}

void Interpreter::exec_for(const ForStmt& node, const FramePtr& frame, std::string& out) {
  std::vector<Value> items = iterate(eval(*node.iter, frame));
  if (node.condition) {
    std::vector<Value> kept;
    for (Value& item : items) {
      auto probe = std::make_shared<Frame>(frame);
      assign(node.target, item, *probe);
      if (truthy(eval(*node.condition, probe))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    exec_body(node.else_body, std::make_shared<Frame>(frame), out);
    return;
  }
  auto loop = std::make_shared<LoopObject>(items);
  Value loop_value = Value::object(loop);
  for (size_t i = 0; i < items.size(); ++i) {
    loop->set_index(i);
    auto iteration = std::make_shared<Frame>(frame);
    assign(node.target, items[i], *iteration);
    iteration->set("loop", loop_value);
    if (exec_body(node.body, iteration, out) == Flow::break_loop) break;
  }
}

void Interpreter::exec_call_block(const CallBlockStmt& node, const FramePtr& frame,
                                  std::string& out) {
  const auto& call = static_cast<const CallExpr&>(*node.call);
  Value callee = eval(*call.callee, frame);
  Args args = eval_args(call.args, frame);
  args.keyword.emplace_back("caller",
                            Value::object(std::make_shared<MacroObject>(&node, frame, true)));
  append_str(out, this->call(callee, args));
}

void Interpreter::assign(const Target& target, const Value& value, Frame& frame) {
  switch (target.kind) {
    case Target::Kind::name:
      frame.set(target.name, value);
      return;
    case Target::Kind::tuple: {
      std::vector<Value> parts = iterate(value);
      if (parts.size() > target.items.size()) {
        fail_render("too many values to unpack (expected {})", target.items.size());
      }
      if (parts.size() < target.items.size()) {
        fail_render("not enough values to unpack (expected {}, got {})", target.items.size(),
                    parts.size());
      }
      for (size_t i = 0; i < parts.size(); ++i) assign(target.items[i], parts[i], frame);
      return;
    }
    case Target::Kind::ns_attr: {
      const Value* ns = frame.find(target.name);
      const auto* object =
          ns && ns->is_object() ? dynamic_cast<const NamespaceObject*>(&ns->obj()) : nullptr;
      if (!object) fail_render("cannot assign attribute on non-namespace object");
      object->set_attr(target.attr, value);
      return;
    }
  }
}

Value Interpreter::call(const Value& callee, Args& args) {
  if (callee.is_undefined()) fail_undefined(callee);
  if (!callee.is_object() || !callee.obj().callable()) {
    fail_render("'{}' object is not callable", type_name(callee));
  }
  return callee.obj().call(*this, args);
}

Value Interpreter::invoke_macro(const MacroObject& macro, Args& args) {
  const MacroStmt& node = *macro.node;
  FramePtr scope = macro.strong_scope ? macro.strong_scope : macro.weak_scope.lock();
  if (!scope) fail_render("macro '{}' was called after its scope ended", node.name);
  if (call_depth_ >= kMaxCallDepth) fail_render("maximum recursion depth exceeded");
  struct DepthGuard {
    int& depth;
    ~DepthGuard() { --depth; }
  } guard{++call_depth_};

  auto frame = std::make_shared<Frame>(scope);
  const auto& params = node.params;
  if (args.positional.size() > params.size() && !node.uses_varargs) {
    fail_render("macro '{}' takes not more than {} argument(s)", node.name, params.size());
  }
  std::vector<bool> taken(args.keyword.size(), false);
  for (size_t i = 0; i < params.size(); ++i) {
    const MacroParam& param = params[i];
    std::optional<Value> value;
    if (i < args.positional.size()) value = args.positional[i];
    for (size_t k = 0; k < args.keyword.size(); ++k) {
      if (args.keyword[k].first != param.name) continue;
      if (value)
        fail_render("macro '{}' got multiple values for argument '{}'", node.name, param.name);
      value = args.keyword[k].second;
      taken[k] = true;
    }
    if (!value) {
      value = param.default_value
                  ? eval(*param.default_value, frame)
                  : Value::undefined(fmt::format("parameter '{}' was not provided", param.name));
    }
    frame->set(param.name, std::move(*value));
  }
  DictData extra;
  Value caller = Value::undefined("No caller defined");
  for (size_t k = 0; k < args.keyword.size(); ++k) {
    if (taken[k]) continue;
    const auto& [key, value] = args.keyword[k];
    if (key == "caller" && node.uses_caller) {
      caller = value;
    } else if (node.uses_kwargs) {
      extra.set(Value(key), value);
    } else {
      fail_render("macro '{}' takes no keyword argument '{}'", node.name, key);
    }
  }
  if (node.uses_varargs) {
    std::vector<Value> rest;
    for (size_t i = params.size(); i < args.positional.size(); ++i)
      rest.push_back(args.positional[i]);
    frame->set("varargs", Value::tuple(std::move(rest)));
  }
  if (node.uses_kwargs) frame->set("kwargs", Value::dict(std::move(extra)));
  if (node.uses_caller) frame->set("caller", caller);
  std::string out;
  exec_body(node.body, frame, out);
  return Value(std::move(out));
}

Value Interpreter::apply_filter(std::string_view name, const Value& subject, const Args& args) {
  FilterFn fn = find_filter(name);
  if (!fn) fail_missing_filter(name);
  return fn(*this, subject, args);
}

bool Interpreter::apply_test(std::string_view name, const Value& subject, const Args& args) {
  TestFn fn = find_test(name);
  if (!fn) fail_missing_test(name);
  return fn(*this, subject, args);
}

Args Interpreter::eval_args(const CallArgs& call, const FramePtr& frame) {
  Args args;
  args.positional.reserve(call.positional.size());
  for (const ExprPtr& e : call.positional) args.positional.push_back(eval(*e, frame));
  for (const auto& [k, e] : call.keyword) args.keyword.emplace_back(k, eval(*e, frame));
  if (call.dyn_args) {
    for (Value& v : iterate(eval(*call.dyn_args, frame))) args.positional.push_back(std::move(v));
  }
  if (call.dyn_kwargs) {
    Value kw = eval(*call.dyn_kwargs, frame);
    if (!kw.is_dict()) fail_render("argument after ** must be a mapping, not {}", type_name(kw));
    for (const auto& [k, v] : kw.dict_data().entries) {
      if (!k.is_string()) fail_render("keywords must be strings");
      args.keyword.emplace_back(k.str(), v);
    }
  }
  return args;
}

Value Interpreter::eval_filter_chain(const Expr& filter, const Value& block,
                                     const FramePtr& frame) {
  const auto& node = static_cast<const FilterExpr&>(filter);
  Value subject = node.subject ? eval_filter_chain(*node.subject, block, frame) : block;
  if (!node.fn) fail_missing_filter(node.name);
  try {
    return node.fn(*this, subject, eval_args(node.args, frame));
  } catch (TemplateError& e) {
    if (e.line == 0) e.line = node.line;
    throw;
  }
}

Value Interpreter::eval(const Expr& expr, const FramePtr& frame) {
  try {
    return eval_node(expr, frame);
  } catch (TemplateError& e) {
    if (e.line == 0) e.line = expr.line;
    throw;
  }
}

Value Interpreter::eval_node(const Expr& expr, const FramePtr& frame) {
  switch (expr.kind) {
    case ExprKind::literal:
      return static_cast<const LiteralExpr&>(expr).value;
    case ExprKind::name: {
      const auto& name = static_cast<const NameExpr&>(expr).name;
      if (const Value* v = frame->find(name)) return *v;
      return Value::undefined(fmt::format("'{}' is undefined", name));
    }
    case ExprKind::list: {
      const auto& node = static_cast<const ListExpr&>(expr);
      std::vector<Value> items;
      items.reserve(node.items.size());
      for (const ExprPtr& e : node.items) items.push_back(eval(*e, frame));
      return node.tuple ? Value::tuple(std::move(items)) : Value::list(std::move(items));
    }
    case ExprKind::dict: {
      DictData dict;
      for (const auto& [k, v] : static_cast<const DictExpr&>(expr).items) {
        Value key = eval(*k, frame);
        if (key.is_sequence() && !key.is_tuple()) fail_render("unhashable type: 'list'");
        if (key.is_dict()) fail_render("unhashable type: 'dict'");
        dict.set(std::move(key), eval(*v, frame));
      }
      return Value::dict(std::move(dict));
    }
    case ExprKind::getattr: {
      const auto& node = static_cast<const GetattrExpr&>(expr);
      Value obj = eval(*node.object, frame);
      if (obj.is_undefined()) fail_undefined(obj);
      return get_attr(obj, node.attr);
    }
    case ExprKind::getitem:
      return eval_getitem(static_cast<const GetitemExpr&>(expr), frame);
    case ExprKind::slice:
      fail_render("slice outside of a subscript");
    case ExprKind::call: {
      const auto& node = static_cast<const CallExpr&>(expr);
      Value callee = eval(*node.callee, frame);
      Args args = eval_args(node.args, frame);
      return call(callee, args);
    }
    case ExprKind::filter: {
      const auto& node = static_cast<const FilterExpr&>(expr);
      Value subject = eval(*node.subject, frame);
      if (!node.fn) fail_missing_filter(node.name);
      return node.fn(*this, subject, eval_args(node.args, frame));
    }
    case ExprKind::test: {
      const auto& node = static_cast<const TestExpr&>(expr);
      Value subject = eval(*node.subject, frame);
      if (!node.fn) fail_missing_test(node.name);
      return Value(node.fn(*this, subject, eval_args(node.args, frame)));
    }
    case ExprKind::neg:
    case ExprKind::pos: {
      Value v = eval(*static_cast<const UnaryExpr&>(expr).operand, frame);
      if (v.is_undefined()) fail_undefined(v);
      bool neg = expr.kind == ExprKind::neg;
      if (v.is_float()) return Value(neg ? -v.as_double() : v.as_double());
      if (v.is_int() || v.is_bool()) {
        if (!neg) return Value(v.as_int());
        if (v.as_int() == std::numeric_limits<int64_t>::min()) int_overflow();
        return Value(-v.as_int());
      }
      fail_render("bad operand type for unary {}: '{}'", neg ? '-' : '+', type_name(v));
    }
    case ExprKind::not_:
      return Value(!truthy(eval(*static_cast<const UnaryExpr&>(expr).operand, frame)));
    case ExprKind::binary: {
      const auto& node = static_cast<const BinaryExpr&>(expr);
      Value a = eval(*node.left, frame);
      Value b = eval(*node.right, frame);
      return binary_op(node.op, a, b);
    }
    case ExprKind::compare:
      return eval_compare(static_cast<const CompareExpr&>(expr), frame);
    case ExprKind::concat: {
      std::string out;
      for (const ExprPtr& e : static_cast<const ConcatExpr&>(expr).items)
        append_str(out, eval(*e, frame));
      return Value(std::move(out));
    }
    case ExprKind::cond: {
      const auto& node = static_cast<const CondExpr&>(expr);
      if (truthy(eval(*node.test, frame))) return eval(*node.then, frame);
      if (node.otherwise) return eval(*node.otherwise, frame);
      return Value::undefined(fmt::format(
          "the inline if-expression on line {} evaluated to false and no else section was defined.",
          node.line));
    }
    case ExprKind::and_: {
      const auto& node = static_cast<const LogicalExpr&>(expr);
      Value left = eval(*node.left, frame);
      return truthy(left) ? eval(*node.right, frame) : left;
    }
    case ExprKind::or_: {
      const auto& node = static_cast<const LogicalExpr&>(expr);
      Value left = eval(*node.left, frame);
      return truthy(left) ? left : eval(*node.right, frame);
    }
  }
  fail_render("unknown expression");
}

Value Interpreter::eval_getitem(const GetitemExpr& node, const FramePtr& frame) {
  Value obj = eval(*node.object, frame);
  if (obj.is_undefined()) fail_undefined(obj);
  if (node.index->kind != ExprKind::slice) return get_item(obj, eval(*node.index, frame));
  const auto& slice = static_cast<const SliceExpr&>(*node.index);
  auto bound = [&](const ExprPtr& e) -> std::optional<int64_t> {
    if (!e) return std::nullopt;
    Value v = eval(*e, frame);
    if (v.is_none()) return std::nullopt;
    if (!v.is_int() && !v.is_bool()) {
      fail_render("slice indices must be integers or None or have an __index__ method");
    }
    return v.as_int();
  };
  std::optional<int64_t> start = bound(slice.start), stop = bound(slice.stop),
                         step = bound(slice.step);
  if (obj.is_string()) return Value(py::slice(obj.str(), start, stop, step));
  if (obj.is_sequence()) {
    std::vector<Value> out;
    for (int64_t i :
         py::slice_indices(static_cast<int64_t>(obj.items().size()), start, stop, step)) {
      out.push_back(obj.items()[static_cast<size_t>(i)]);
    }
    return obj.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
  }
  if (obj.is_object()) {
    if (const auto* range = dynamic_cast<const RangeObject*>(&obj.obj())) {
      py::SliceBounds b = py::adjust_slice(range->count(), start, stop, step);
      return range->slice(b.start, b.stop, b.step);
    }
  }
  // Jinja compiles slices to plain Python subscription, so nothing swallows this TypeError.
  if (obj.is_dict()) fail_render("unhashable type: 'slice'");
  fail_render("'{}' object is not subscriptable", type_name(obj));
}

Value Interpreter::eval_compare(const CompareExpr& node, const FramePtr& frame) {
  Value left = eval(*node.first, frame);
  for (const auto& [op, expr] : node.rest) {
    Value right = eval(*expr, frame);
    bool ok = false;
    switch (op) {
      case CompareOp::eq:
        ok = equals(left, right);
        break;
      case CompareOp::ne:
        ok = !equals(left, right);
        break;
      case CompareOp::lt:
        ok = compare(left, right) < 0;
        break;
      case CompareOp::le:
        ok = compare(left, right) <= 0;
        break;
      case CompareOp::gt:
        ok = compare(left, right) > 0;
        break;
      case CompareOp::ge:
        ok = compare(left, right) >= 0;
        break;
      case CompareOp::in:
        ok = contains(right, left);
        break;
      case CompareOp::not_in:
        ok = !contains(right, left);
        break;
    }
    if (!ok) return Value(false);
    left = std::move(right);
  }
  return Value(true);
}

}  // namespace hearth::text::jinja
