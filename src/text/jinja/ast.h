// The parsed form of a template: expression and statement nodes, each with its template line.
// Nodes are tagged with a kind and dispatched with a switch in the interpreter.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "text/jinja/value.h"

namespace hearth::text::jinja {

using FilterFn = Value (*)(Interpreter& interp, const Value& subject, const Args& args);
using TestFn = bool (*)(Interpreter& interp, const Value& subject, const Args& args);

enum class ExprKind {
  literal,
  name,
  list,  // list or tuple display
  dict,
  getattr,
  getitem,
  slice,  // only as the index of a getitem
  call,
  filter,
  test,
  neg,
  pos,
  not_,
  binary,
  compare,
  concat,
  cond,
  and_,
  or_,
};

struct Expr {
  Expr(ExprKind kind, int line) : kind(kind), line(line) {}
  virtual ~Expr() = default;
  ExprKind kind;
  int line;
};
using ExprPtr = std::unique_ptr<Expr>;

struct LiteralExpr : Expr {
  LiteralExpr(int line, Value value) : Expr(ExprKind::literal, line), value(std::move(value)) {}
  Value value;
};

struct NameExpr : Expr {
  NameExpr(int line, std::string name) : Expr(ExprKind::name, line), name(std::move(name)) {}
  std::string name;
};

struct ListExpr : Expr {
  ListExpr(int line, bool tuple) : Expr(ExprKind::list, line), tuple(tuple) {}
  std::vector<ExprPtr> items;
  bool tuple;
};

struct DictExpr : Expr {
  explicit DictExpr(int line) : Expr(ExprKind::dict, line) {}
  std::vector<std::pair<ExprPtr, ExprPtr>> items;
};

struct GetattrExpr : Expr {
  GetattrExpr(int line, ExprPtr object, std::string attr)
      : Expr(ExprKind::getattr, line), object(std::move(object)), attr(std::move(attr)) {}
  ExprPtr object;
  std::string attr;
};

struct GetitemExpr : Expr {
  GetitemExpr(int line, ExprPtr object, ExprPtr index)
      : Expr(ExprKind::getitem, line), object(std::move(object)), index(std::move(index)) {}
  ExprPtr object;
  ExprPtr index;
};

struct SliceExpr : Expr {
  explicit SliceExpr(int line) : Expr(ExprKind::slice, line) {}
  ExprPtr start, stop, step;  // each may be null
};

struct CallArgs {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
  ExprPtr dyn_args;    // *args
  ExprPtr dyn_kwargs;  // **kwargs
};

struct CallExpr : Expr {
  CallExpr(int line, ExprPtr callee) : Expr(ExprKind::call, line), callee(std::move(callee)) {}
  ExprPtr callee;
  CallArgs args;
};

// `subject | name(args)`; in filter blocks and set blocks the subject is null and stands for the
// rendered block body.
struct FilterExpr : Expr {
  FilterExpr(int line, ExprPtr subject, std::string name, FilterFn fn)
      : Expr(ExprKind::filter, line), subject(std::move(subject)), name(std::move(name)), fn(fn) {}
  ExprPtr subject;
  std::string name;
  FilterFn fn;  // null: unknown filter, an error when evaluated
  CallArgs args;
};

struct TestExpr : Expr {
  TestExpr(int line, ExprPtr subject, std::string name, TestFn fn)
      : Expr(ExprKind::test, line), subject(std::move(subject)), name(std::move(name)), fn(fn) {}
  ExprPtr subject;
  std::string name;
  TestFn fn;  // null: unknown test, an error when evaluated
  CallArgs args;
};

struct UnaryExpr : Expr {
  UnaryExpr(ExprKind kind, int line, ExprPtr operand)
      : Expr(kind, line), operand(std::move(operand)) {}
  ExprPtr operand;
};

enum class BinaryOp { add, sub, mul, div, floordiv, mod, pow };

struct BinaryExpr : Expr {
  BinaryExpr(int line, BinaryOp op, ExprPtr left, ExprPtr right)
      : Expr(ExprKind::binary, line), op(op), left(std::move(left)), right(std::move(right)) {}
  BinaryOp op;
  ExprPtr left, right;
};

// `and` / `or` (short-circuit, returning an operand as Python does).
struct LogicalExpr : Expr {
  LogicalExpr(ExprKind kind, int line, ExprPtr left, ExprPtr right)
      : Expr(kind, line), left(std::move(left)), right(std::move(right)) {}
  ExprPtr left, right;
};

enum class CompareOp { eq, ne, lt, le, gt, ge, in, not_in };

struct CompareExpr : Expr {
  CompareExpr(int line, ExprPtr first) : Expr(ExprKind::compare, line), first(std::move(first)) {}
  ExprPtr first;
  std::vector<std::pair<CompareOp, ExprPtr>> rest;  // chained: a < b < c
};

struct ConcatExpr : Expr {
  explicit ConcatExpr(int line) : Expr(ExprKind::concat, line) {}
  std::vector<ExprPtr> items;
};

struct CondExpr : Expr {
  CondExpr(int line, ExprPtr test, ExprPtr then, ExprPtr otherwise)
      : Expr(ExprKind::cond, line),
        test(std::move(test)),
        then(std::move(then)),
        otherwise(std::move(otherwise)) {}
  ExprPtr test, then, otherwise;  // otherwise may be null: undefined
};

// Assignment targets: a name, a tuple of targets, or a namespace attribute (`ns.attr`).
struct Target {
  enum class Kind { name, tuple, ns_attr } kind = Kind::name;
  std::string name;
  std::string attr;
  std::vector<Target> items;
  int line = 0;
};

enum class StmtKind {
  text,
  output,
  if_,
  for_,
  set,
  set_block,
  macro,
  call_block,
  filter_block,
  with,
  break_,
  continue_,
  scope,  // {% generation %}: the body, rendered in a scope of its own
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  Stmt(StmtKind kind, int line) : kind(kind), line(line) {}
  virtual ~Stmt() = default;
  StmtKind kind;
  int line;
};

struct TextStmt : Stmt {
  TextStmt(int line, std::string text) : Stmt(StmtKind::text, line), text(std::move(text)) {}
  std::string text;
};

struct OutputStmt : Stmt {
  OutputStmt(int line, ExprPtr expr) : Stmt(StmtKind::output, line), expr(std::move(expr)) {}
  ExprPtr expr;
};

struct IfStmt : Stmt {
  explicit IfStmt(int line) : Stmt(StmtKind::if_, line) {}
  std::vector<std::pair<ExprPtr, Body>> branches;  // if, elif...
  Body else_body;
};

struct ForStmt : Stmt {
  explicit ForStmt(int line) : Stmt(StmtKind::for_, line) {}
  Target target;
  ExprPtr iter;
  ExprPtr condition;  // `for x in y if cond`; may be null
  Body body;
  Body else_body;
};

struct SetStmt : Stmt {
  explicit SetStmt(int line) : Stmt(StmtKind::set, line) {}
  Target target;
  ExprPtr value;
};

struct SetBlockStmt : Stmt {
  explicit SetBlockStmt(int line) : Stmt(StmtKind::set_block, line) {}
  Target target;
  ExprPtr filter;  // filter chain applied to the body (null subject at its root); may be null
  Body body;
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // may be null
};

struct MacroStmt : Stmt {
  MacroStmt(StmtKind kind, int line) : Stmt(kind, line) {}
  std::string name;
  std::vector<MacroParam> params;
  Body body;
  // Whether the body reads these names: extra arguments are collected only then, as in Jinja.
  bool uses_varargs = false;
  bool uses_kwargs = false;
  bool uses_caller = false;
};

// {% call(params) macro(args) %}body{% endcall %}: the body becomes `caller` for the macro.
struct CallBlockStmt : MacroStmt {
  explicit CallBlockStmt(int line) : MacroStmt(StmtKind::call_block, line) {}
  ExprPtr call;  // a CallExpr
};

struct FilterBlockStmt : Stmt {
  explicit FilterBlockStmt(int line) : Stmt(StmtKind::filter_block, line) {}
  ExprPtr filter;  // filter chain with a null subject at its root
  Body body;
};

struct WithStmt : Stmt {
  explicit WithStmt(int line) : Stmt(StmtKind::with, line) {}
  std::vector<std::pair<Target, ExprPtr>> assignments;
  Body body;
};

struct ScopeStmt : Stmt {
  ScopeStmt(StmtKind kind, int line) : Stmt(kind, line) {}
  Body body;
};

}  // namespace hearth::text::jinja
