// Renders a parsed template: a tree walk over the AST with Jinja2's scoping (a fresh scope per
// loop iteration, macros closing over the scope they were defined in, if-blocks sharing their
// parent's scope) and Python semantics for every operator.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "text/jinja/ast.h"
#include "text/jinja/value.h"

namespace hearth::text::jinja {

class NamespaceObject;

// One scope. Lookups walk the parent chain; assignments always land in the innermost scope.
struct Frame {
  explicit Frame(std::shared_ptr<Frame> parent) : parent(std::move(parent)) {}
  const Value* find(std::string_view name) const;
  void set(std::string_view name, Value value);

  std::shared_ptr<Frame> parent;
  std::vector<std::pair<std::string, Value>> vars;
};
using FramePtr = std::shared_ptr<Frame>;

// A macro, or the body of a call block bound as `caller`.
class MacroObject final : public Object {
 public:
  MacroObject(const MacroStmt* node, const FramePtr& scope, bool own_scope)
      : node(node), weak_scope(scope), strong_scope(own_scope ? scope : nullptr) {}
  std::string type_name() const override { return "Macro"; }
  bool callable() const override { return true; }
  Value call(Interpreter& interp, Args& args) const override;
  std::string repr() const override;
  std::optional<Value> get_attr(const Value& self, const std::string& name) const override;

  const MacroStmt* node;
  // A macro stored in its own defining scope holds that scope weakly (no reference cycle);
  // a caller holds it strongly.
  std::weak_ptr<Frame> weak_scope;
  FramePtr strong_scope;
};

class Interpreter {
 public:
  // `globals` is the outermost scope (context variables over the built-in globals).
  explicit Interpreter(FramePtr globals) : globals_(std::move(globals)) {}
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  // Namespaces are the only mutable values, hence the only way to build a reference cycle
  // (`{% set ns.self = ns %}`); the interpreter clears them when the render ends.
  void track(std::shared_ptr<const NamespaceObject> ns) { namespaces_.push_back(std::move(ns)); }

  void render(const Body& body, std::string& out);

  // Calls anything callable (macros, builtins, bound methods); Undefined raises its error.
  Value call(const Value& callee, Args& args);
  Value invoke_macro(const MacroObject& macro, Args& args);
  // Applies a filter or test by name (for map(), select(), ...).
  Value apply_filter(std::string_view name, const Value& subject, const Args& args);
  bool apply_test(std::string_view name, const Value& subject, const Args& args);

 private:
  enum class Flow { normal, break_loop, continue_loop };

  Flow exec_body(const Body& body, const FramePtr& frame, std::string& out);
  Flow exec(const Stmt& stmt, const FramePtr& frame, std::string& out);
  void exec_for(const ForStmt& node, const FramePtr& frame, std::string& out);
  void exec_call_block(const CallBlockStmt& node, const FramePtr& frame, std::string& out);
  void assign(const Target& target, const Value& value, Frame& frame);

  Value eval(const Expr& expr, const FramePtr& frame);
  Value eval_node(const Expr& expr, const FramePtr& frame);
  Value eval_getitem(const GetitemExpr& node, const FramePtr& frame);
  Value eval_compare(const CompareExpr& node, const FramePtr& frame);
  Args eval_args(const CallArgs& args, const FramePtr& frame);
  // Applies a filter chain whose innermost subject is null to `block` (filter/set blocks).
  Value eval_filter_chain(const Expr& filter, const Value& block, const FramePtr& frame);

  FramePtr globals_;
  int call_depth_ = 0;
  std::vector<std::shared_ptr<const NamespaceObject>> namespaces_;
};

// Python binary operators on values.
Value binary_op(BinaryOp op, const Value& a, const Value& b);
// `item in container`.
bool contains(const Value& container, const Value& item);

}  // namespace hearth::text::jinja
