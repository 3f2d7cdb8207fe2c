// Recursive-descent parser following Jinja2's parser.py: the same statement set (with the
// loopcontrols extension and transformers' {% generation %} tag), the same precedence ladder
// (condexpr < or < and < not < compare < +,- < ~ < *,/,//,% < ** < unary < filters/tests/postfix)
// and the same error messages where users are likely to meet them.
#include "text/jinja/parser.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <initializer_list>
#include <set>

#include "text/jinja/builtins.h"
#include "text/jinja/lexer.h"

namespace hearth::text::jinja {
namespace {

// Deep enough for any real template, shallow enough that malformed input cannot exhaust the
// stack.
constexpr int kMaxNesting = 200;

[[noreturn]] void syntax_error(int line, std::string message) {
  throw TemplateError(TemplateError::Kind::syntax, std::move(message), line);
}

std::string describe(const Token& t) {
  switch (t.type) {
    case TokenType::name:
    case TokenType::op:
    case TokenType::integer:
    case TokenType::floating:
      return t.value;
    case TokenType::string:
      return "string";
    default:
      return token_type_name(t.type);
  }
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Body parse() {
    Body body = subparse({});
    if (cur().type != TokenType::eof) syntax_error(cur().line, "unexpected tokens after template");
    // Jinja reports unknown filters and tests when compiling, after the whole template parsed.
    if (!unknown_.empty()) syntax_error(unknown_.front().first, unknown_.front().second);
    return body;
  }

 private:
  struct NestingGuard {
    explicit NestingGuard(Parser& p) : p(p) {
      if (++p.depth_ > kMaxNesting) syntax_error(p.cur().line, "template nested too deeply");
    }
    ~NestingGuard() { --p.depth_; }
    Parser& p;
  };

  const Token& cur() const { return tokens_[pos_]; }
  const Token& look(size_t n = 1) const { return tokens_[std::min(pos_ + n, tokens_.size() - 1)]; }
  Token next() {
    Token t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return t;
  }
  bool at_op(std::string_view op) const { return cur().type == TokenType::op && cur().value == op; }
  bool at_name(std::string_view name) const {
    return cur().type == TokenType::name && cur().value == name;
  }
  bool skip_op(std::string_view op) {
    if (!at_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!at_name(name)) return false;
    next();
    return true;
  }
  [[noreturn]] void unexpected_eof_or(const std::string& expected) {
    if (cur().type == TokenType::eof)
      syntax_error(cur().line, fmt::format("unexpected end of template, expected '{}'.", expected));
    syntax_error(cur().line,
                 fmt::format("expected token '{}', got '{}'", expected, describe(cur())));
  }
  Token expect_op(std::string_view op) {
    if (!at_op(op)) unexpected_eof_or(std::string(op));
    return next();
  }
  Token expect_name() {
    if (cur().type != TokenType::name) unexpected_eof_or("name");
    return next();
  }
  Token expect(TokenType type) {
    if (cur().type != type) unexpected_eof_or(token_type_name(type));
    return next();
  }

  // --- statements -------------------------------------------------------------------------

  // Parses until a block tag whose name is in `end_tags` (left as the current token) or the end.
  Body subparse(std::initializer_list<std::string_view> end_tags) {
    NestingGuard guard(*this);
    Body body;
    while (cur().type != TokenType::eof) {
      const Token& t = cur();
      if (t.type == TokenType::text) {
        body.push_back(std::make_unique<TextStmt>(t.line, t.value));
        next();
      } else if (t.type == TokenType::variable_begin) {
        int line = next().line;
        ExprPtr e = parse_tuple(true, false, {});
        expect(TokenType::variable_end);
        body.push_back(std::make_unique<OutputStmt>(line, std::move(e)));
      } else if (t.type == TokenType::block_begin) {
        next();
        for (std::string_view end : end_tags)
          if (at_name(end)) return body;
        body.push_back(parse_statement());
      } else {
        syntax_error(t.line, fmt::format("unexpected '{}'", describe(t)));
      }
    }
    if (end_tags.size() != 0) fail_eof(end_tags);
    return body;
  }

  [[noreturn]] void fail_eof(std::initializer_list<std::string_view> end_tags) {
    std::string expected;
    for (std::string_view tag : end_tags) {
      if (!expected.empty()) expected += " or ";
      expected += fmt::format("'{}'", tag);
    }
    std::string msg = "Unexpected end of template.";
    if (!expected.empty()) msg += " Jinja was looking for the following tags: " + expected + ".";
    if (!open_blocks_.empty())
      msg +=
          fmt::format(" The innermost block that needs to be closed is '{}'.", open_blocks_.back());
    syntax_error(cur().line, msg);
  }

  // After a statement header: `%}`, then the body up to one of `end_tags`.
  Body parse_block_body(std::initializer_list<std::string_view> end_tags, bool drop_needle) {
    expect(TokenType::block_end);
    Body body = subparse(end_tags);
    if (cur().type == TokenType::eof) fail_eof(end_tags);
    if (drop_needle) next();
    return body;
  }

  StmtPtr parse_statement() {
    const Token& t = cur();
    if (t.type != TokenType::name) syntax_error(t.line, "tag name expected");
    std::string tag = t.value;
    static const std::set<std::string, std::less<>> kBlockTags = {
        "for", "if", "macro", "call", "filter", "set", "with", "generation", "autoescape"};
    bool pushed = kBlockTags.count(tag) > 0;
    if (pushed) open_blocks_.push_back(tag);
    StmtPtr stmt;
    if (tag == "for") {
      stmt = parse_for();
    } else if (tag == "if") {
      stmt = parse_if();
    } else if (tag == "set") {
      stmt = parse_set();
    } else if (tag == "macro") {
      stmt = parse_macro();
    } else if (tag == "call") {
      stmt = parse_call_block();
    } else if (tag == "filter") {
      stmt = parse_filter_block();
    } else if (tag == "with") {
      stmt = parse_with();
    } else if (tag == "generation" || tag == "autoescape") {
      // transformers' AssistantTracker renders the body through a caller (its own scope);
      // autoescape only changes escaping, which this environment never does.
      int line = next().line;
      if (tag == "autoescape") parse_expression(true);
      auto scope = std::make_unique<ScopeStmt>(StmtKind::scope, line);
      scope->body =
          parse_block_body({tag == "generation" ? "endgeneration" : "endautoescape"}, true);
      expect(TokenType::block_end);
      stmt = std::move(scope);
    } else if (tag == "break" || tag == "continue") {
      int line = next().line;
      if (loop_depth_ == 0) syntax_error(line, fmt::format("'{}' outside loop", tag));
      stmt = std::make_unique<Stmt>(tag == "break" ? StmtKind::break_ : StmtKind::continue_, line);
      expect(TokenType::block_end);
    } else if (tag == "include" || tag == "import" || tag == "from" || tag == "extends" ||
               tag == "block") {
      syntax_error(t.line, fmt::format("'{}' is not supported in chat templates (no loader)", tag));
    } else {
      std::string msg = fmt::format("Encountered unknown tag '{}'.", tag);
      if (!open_blocks_.empty()) {
        msg += fmt::format(" The innermost block that needs to be closed is '{}'.",
                           open_blocks_.back());
      }
      syntax_error(t.line, msg);
    }
    if (pushed) open_blocks_.pop_back();
    return stmt;
  }

  StmtPtr parse_for() {
    auto node = std::make_unique<ForStmt>(next().line);
    node->target = parse_assign_target(false, {"in"});
    if (!skip_name("in")) unexpected_eof_or("in");
    node->iter = parse_tuple(false, false, {"recursive"});
    if (skip_name("if")) node->condition = parse_expression(true);
    if (at_name("recursive")) syntax_error(cur().line, "recursive loops are not supported");
    int saved_soft = soft_;
    soft_ = 0;
    ++loop_depth_;
    node->body = parse_block_body({"endfor", "else"}, false);
    --loop_depth_;
    if (next().value == "else") node->else_body = parse_block_body({"endfor"}, true);
    soft_ = saved_soft;
    expect(TokenType::block_end);
    return node;
  }

  StmtPtr parse_if() {
    auto node = std::make_unique<IfStmt>(next().line);
    ++soft_;
    while (true) {
      ExprPtr test = parse_tuple(false, false, {});
      Body body = parse_block_body({"elif", "else", "endif"}, false);
      node->branches.emplace_back(std::move(test), std::move(body));
      std::string tag = next().value;
      if (tag == "elif") continue;
      if (tag == "else") node->else_body = parse_block_body({"endif"}, true);
      break;
    }
    --soft_;
    expect(TokenType::block_end);
    return node;
  }

  StmtPtr parse_set() {
    int line = next().line;
    Target target = parse_assign_target(true, {});
    if (skip_op("=")) {
      auto node = std::make_unique<SetStmt>(line);
      node->target = std::move(target);
      node->value = parse_tuple(true, false, {});
      expect(TokenType::block_end);
      return node;
    }
    auto node = std::make_unique<SetBlockStmt>(line);
    node->target = std::move(target);
    if (at_op("|")) node->filter = parse_filter(nullptr, false);
    int saved_soft = soft_;
    soft_ = 0;
    node->body = parse_block_body({"endset"}, true);
    soft_ = saved_soft;
    expect(TokenType::block_end);
    return node;
  }

  void parse_signature(MacroStmt& node) {
    expect_op("(");
    while (!at_op(")")) {
      if (!node.params.empty()) expect_op(",");
      Token name = expect_name();
      MacroParam param{name.value, nullptr};
      if (skip_op("=")) param.default_value = parse_expression(true);
      node.params.push_back(std::move(param));
    }
    expect_op(")");
  }

  // Parses a macro or call-block body, noting whether it reads varargs/kwargs/caller.
  void parse_macro_body(MacroStmt& node, std::string_view end_tag) {
    int saved_soft = soft_, saved_loops = loop_depth_;
    soft_ = 0;
    loop_depth_ = 0;
    used_names_.emplace_back();
    node.body = parse_block_body({end_tag}, true);
    const auto& used = used_names_.back();
    node.uses_varargs = used.count("varargs") > 0;
    node.uses_kwargs = used.count("kwargs") > 0;
    node.uses_caller = used.count("caller") > 0;
    used_names_.pop_back();
    soft_ = saved_soft;
    loop_depth_ = saved_loops;
    expect(TokenType::block_end);
  }

  StmtPtr parse_macro() {
    auto node = std::make_unique<MacroStmt>(StmtKind::macro, next().line);
    node->name = expect_name().value;
    parse_signature(*node);
    parse_macro_body(*node, "endmacro");
    return node;
  }

  StmtPtr parse_call_block() {
    auto node = std::make_unique<CallBlockStmt>(next().line);
    if (at_op("(")) parse_signature(*node);
    node->call = parse_expression(true);
    if (node->call->kind != ExprKind::call) syntax_error(node->line, "expected call");
    node->name = "caller";
    parse_macro_body(*node, "endcall");
    return node;
  }

  StmtPtr parse_filter_block() {
    auto node = std::make_unique<FilterBlockStmt>(next().line);
    node->filter = parse_filter(nullptr, true);
    int saved_soft = soft_;
    soft_ = 0;
    node->body = parse_block_body({"endfilter"}, true);
    soft_ = saved_soft;
    expect(TokenType::block_end);
    return node;
  }

  StmtPtr parse_with() {
    auto node = std::make_unique<WithStmt>(next().line);
    while (cur().type != TokenType::block_end) {
      if (!node->assignments.empty()) expect_op(",");
      Target target = parse_assign_target(false, {});
      expect_op("=");
      node->assignments.emplace_back(std::move(target), parse_expression(true));
    }
    int saved_soft = soft_;
    soft_ = 0;
    node->body = parse_block_body({"endwith"}, true);
    soft_ = saved_soft;
    expect(TokenType::block_end);
    return node;
  }

  // `name`, `a, b`, `(a, (b, c))`, or with with_namespace `ns.attr`.
  Target parse_assign_target(bool with_namespace,
                             std::initializer_list<std::string_view> end_names) {
    if (with_namespace && cur().type == TokenType::name && look().type == TokenType::op &&
        look().value == ".") {
      Target t;
      t.kind = Target::Kind::ns_attr;
      t.line = cur().line;
      t.name = next().value;
      next();
      t.attr = expect_name().value;
      return t;
    }
    Target tuple;
    tuple.kind = Target::Kind::tuple;
    tuple.line = cur().line;
    bool is_tuple = false;
    while (true) {
      if (!tuple.items.empty()) expect_op(",");
      bool end = cur().type == TokenType::block_end || cur().type == TokenType::variable_end ||
                 cur().type == TokenType::eof || at_op(")");
      for (std::string_view n : end_names) end = end || at_name(n);
      if (end) break;
      tuple.items.push_back(parse_target_primary());
      if (at_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (tuple.items.empty())
        syntax_error(cur().line, fmt::format("Expected an expression, got '{}'", describe(cur())));
      return std::move(tuple.items[0]);
    }
    return tuple;
  }

  Target parse_target_primary() {
    NestingGuard guard(*this);
    if (skip_op("(")) {
      Target t = parse_assign_target(false, {});
      if (t.kind != Target::Kind::tuple) {
        expect_op(")");
        return t;
      }
      expect_op(")");
      return t;
    }
    if (cur().type != TokenType::name) {
      syntax_error(cur().line, fmt::format("can't assign to '{}'", describe(cur())));
    }
    Token name = next();
    if (name.value == "true" || name.value == "false" || name.value == "none" ||
        name.value == "True" || name.value == "False" || name.value == "None") {
      syntax_error(name.line, "can't assign to const");
    }
    Target t;
    t.name = name.value;
    t.line = name.line;
    return t;
  }

  // --- expressions ------------------------------------------------------------------------

  bool is_tuple_end(std::initializer_list<std::string_view> extra_end) const {
    if (cur().type == TokenType::variable_end || cur().type == TokenType::block_end ||
        cur().type == TokenType::eof || at_op(")"))
      return true;
    for (std::string_view n : extra_end)
      if (at_name(n)) return true;
    return false;
  }

  ExprPtr parse_tuple(bool with_condexpr, bool explicit_parentheses,
                      std::initializer_list<std::string_view> extra_end) {
    int line = cur().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      items.push_back(parse_expression(with_condexpr));
      if (at_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parentheses) {
        syntax_error(cur().line, fmt::format("Expected an expression, got '{}'", describe(cur())));
      }
    }
    auto node = std::make_unique<ListExpr>(line, true);
    node->items = std::move(items);
    return node;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    NestingGuard guard(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    int line = cur().line;
    size_t mark = unknown_.size();
    ExprPtr expr = parse_or();
    while (skip_name("if")) {
      // Everything in an inline if is compiled in a "soft" frame: unknown names fail at runtime.
      unknown_.resize(mark);
      ++soft_;
      ExprPtr test = parse_or();
      ExprPtr otherwise = skip_name("else") ? parse_condexpr() : nullptr;
      --soft_;
      expr =
          std::make_unique<CondExpr>(line, std::move(test), std::move(expr), std::move(otherwise));
    }
    return expr;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (at_name("or")) {
      int line = next().line;
      left = std::make_unique<LogicalExpr>(ExprKind::or_, line, std::move(left), parse_and());
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (at_name("and")) {
      int line = next().line;
      left = std::make_unique<LogicalExpr>(ExprKind::and_, line, std::move(left), parse_not());
    }
    return left;
  }

  ExprPtr parse_not() {
    if (at_name("not")) {
      NestingGuard guard(*this);
      int line = next().line;
      return std::make_unique<UnaryExpr>(ExprKind::not_, line, parse_not());
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    int line = cur().line;
    ExprPtr first = parse_math1();
    std::vector<std::pair<CompareOp, ExprPtr>> rest;
    while (true) {
      std::optional<CompareOp> op;
      if (cur().type == TokenType::op) {
        const std::string& v = cur().value;
        if (v == "==") op = CompareOp::eq;
        if (v == "!=") op = CompareOp::ne;
        if (v == "<") op = CompareOp::lt;
        if (v == "<=") op = CompareOp::le;
        if (v == ">") op = CompareOp::gt;
        if (v == ">=") op = CompareOp::ge;
        if (op) next();
      } else if (at_name("in")) {
        next();
        op = CompareOp::in;
      } else if (at_name("not") && look().type == TokenType::name && look().value == "in") {
        next();
        next();
        op = CompareOp::not_in;
      }
      if (!op) break;
      rest.emplace_back(*op, parse_math1());
    }
    if (rest.empty()) return first;
    auto node = std::make_unique<CompareExpr>(line, std::move(first));
    node->rest = std::move(rest);
    return node;
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (at_op("+") || at_op("-")) {
      Token op = next();
      left = std::make_unique<BinaryExpr>(op.line, op.value == "+" ? BinaryOp::add : BinaryOp::sub,
                                          std::move(left), parse_concat());
    }
    return left;
  }

  ExprPtr parse_concat() {
    int line = cur().line;
    ExprPtr first = parse_math2();
    if (!at_op("~")) return first;
    auto node = std::make_unique<ConcatExpr>(line);
    node->items.push_back(std::move(first));
    while (skip_op("~")) node->items.push_back(parse_math2());
    return node;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (at_op("*") || at_op("/") || at_op("//") || at_op("%")) {
      Token op = next();
      BinaryOp kind = op.value == "*"    ? BinaryOp::mul
                      : op.value == "/"  ? BinaryOp::div
                      : op.value == "//" ? BinaryOp::floordiv
                                         : BinaryOp::mod;
      left = std::make_unique<BinaryExpr>(op.line, kind, std::move(left), parse_pow());
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (at_op("**")) {
      int line = next().line;
      left = std::make_unique<BinaryExpr>(line, BinaryOp::pow, std::move(left), parse_unary(true));
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    NestingGuard guard(*this);
    ExprPtr node;
    if (at_op("-") || at_op("+")) {
      Token op = next();
      node = std::make_unique<UnaryExpr>(op.value == "-" ? ExprKind::neg : ExprKind::pos, op.line,
                                         parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    int line = t.line;
    switch (t.type) {
      case TokenType::name: {
        std::string name = next().value;
        if (name == "true" || name == "True")
          return std::make_unique<LiteralExpr>(line, Value(true));
        if (name == "false" || name == "False")
          return std::make_unique<LiteralExpr>(line, Value(false));
        if (name == "none" || name == "None")
          return std::make_unique<LiteralExpr>(line, Value::none());
        for (auto& used : used_names_) used.insert(name);
        return std::make_unique<NameExpr>(line, std::move(name));
      }
      case TokenType::string: {
        std::string s = next().value;
        while (cur().type == TokenType::string) s += next().value;  // adjacent literals join
        return std::make_unique<LiteralExpr>(line, Value(std::move(s)));
      }
      case TokenType::integer:
        return std::make_unique<LiteralExpr>(line, parse_int(next()));
      case TokenType::floating: {
        std::string text = next().value;
        return std::make_unique<LiteralExpr>(line, Value(std::strtod(text.c_str(), nullptr)));
      }
      case TokenType::op:
        if (t.value == "(") {
          next();
          ExprPtr e = parse_tuple(true, true, {});
          expect_op(")");
          return e;
        }
        if (t.value == "[") return parse_list();
        if (t.value == "{") return parse_dict();
        [[fallthrough]];
      default:
        if (t.type == TokenType::eof) syntax_error(line, "unexpected end of template");
        syntax_error(line, fmt::format("unexpected '{}'", describe(t)));
    }
  }

  Value parse_int(const Token& t) {
    std::string_view digits = t.value;
    int base = 10;
    if (digits.size() > 2 && digits[0] == '0') {
      char p = static_cast<char>(digits[1] | 0x20);
      base = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 10;
      if (base != 10) digits.remove_prefix(2);
    }
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
    if (ec != std::errc() || ptr != digits.data() + digits.size()) {
      syntax_error(t.line, fmt::format("integer literal {} is too large", t.value));
    }
    return Value(v);
  }

  ExprPtr parse_list() {
    auto node = std::make_unique<ListExpr>(next().line, false);
    while (!at_op("]")) {
      if (!node->items.empty()) expect_op(",");
      if (at_op("]")) break;
      node->items.push_back(parse_expression(true));
    }
    expect_op("]");
    return node;
  }

  ExprPtr parse_dict() {
    auto node = std::make_unique<DictExpr>(next().line);
    while (!at_op("}")) {
      if (!node->items.empty()) expect_op(",");
      if (at_op("}")) break;
      ExprPtr key = parse_expression(true);
      expect_op(":");
      node->items.emplace_back(std::move(key), parse_expression(true));
    }
    expect_op("}");
    return node;
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (at_op(".") || at_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (at_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (at_op("|")) {
        node = parse_filter(std::move(node), false);
      } else if (at_name("is")) {
        node = parse_test(std::move(node));
      } else if (at_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    Token t = next();
    if (t.value == ".") {
      const Token& attr = cur();
      if (attr.type == TokenType::name) {
        return std::make_unique<GetattrExpr>(t.line, std::move(node), next().value);
      }
      if (attr.type == TokenType::integer) {
        auto index = std::make_unique<LiteralExpr>(attr.line, parse_int(next()));
        return std::make_unique<GetitemExpr>(t.line, std::move(node), std::move(index));
      }
      syntax_error(attr.line, "expected name or number");
    }
    std::vector<ExprPtr> args;
    while (!at_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    ExprPtr index;
    if (args.size() == 1) {
      index = std::move(args[0]);
    } else {
      auto tuple = std::make_unique<ListExpr>(t.line, true);
      tuple->items = std::move(args);
      index = std::move(tuple);
    }
    return std::make_unique<GetitemExpr>(t.line, std::move(node), std::move(index));
  }

  ExprPtr parse_subscribed() {
    int line = cur().line;
    auto slice = std::make_unique<SliceExpr>(line);
    if (!at_op(":")) {
      ExprPtr e = parse_expression(true);
      if (!at_op(":")) return e;
      slice->start = std::move(e);
    }
    next();  // ':'
    if (!at_op(":") && !at_op("]") && !at_op(",")) slice->stop = parse_expression(true);
    if (skip_op(":")) {
      if (!at_op("]") && !at_op(",")) slice->step = parse_expression(true);
    }
    return slice;
  }

  CallArgs parse_call_args() {
    CallArgs args;
    int line = expect_op("(").line;
    bool require_comma = false;
    while (!at_op(")")) {
      if (require_comma) {
        expect_op(",");
        if (at_op(")")) break;
      }
      if (skip_op("*")) {
        args.dyn_args = parse_expression(true);
      } else if (skip_op("**")) {
        args.dyn_kwargs = parse_expression(true);
      } else if (cur().type == TokenType::name && look().type == TokenType::op &&
                 look().value == "=") {
        if (args.dyn_kwargs) syntax_error(line, "invalid syntax for function call expression");
        std::string key = next().value;
        next();
        args.keyword.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (args.dyn_args || args.dyn_kwargs || !args.keyword.empty()) {
          syntax_error(line, "invalid syntax for function call expression");
        }
        args.positional.push_back(parse_expression(true));
      }
      require_comma = true;
    }
    expect_op(")");
    return args;
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto node = std::make_unique<CallExpr>(cur().line, std::move(callee));
    node->args = parse_call_args();
    return node;
  }

  std::string parse_dotted_name() {
    std::string name = expect_name().value;
    while (at_op(".")) {
      next();
      name += "." + expect_name().value;
    }
    return name;
  }

  ExprPtr parse_filter(ExprPtr node, bool start_inline) {
    while (at_op("|") || start_inline) {
      if (!start_inline) next();
      start_inline = false;
      int line = cur().line;
      std::string name = parse_dotted_name();
      FilterFn fn = find_filter(name);
      if (!fn && soft_ == 0 && !is_unsupported_filter(name))
        unknown_.emplace_back(line, fmt::format("No filter named '{}'.", name));
      auto filter = std::make_unique<FilterExpr>(line, std::move(node), std::move(name), fn);
      if (at_op("(")) filter->args = parse_call_args();
      node = std::move(filter);
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    int line = next().line;  // 'is'
    bool negated = skip_name("not");
    std::string name = parse_dotted_name();
    TestFn fn = find_test(name);
    if (!fn && soft_ == 0) unknown_.emplace_back(line, fmt::format("No test named '{}'.", name));
    auto test = std::make_unique<TestExpr>(line, std::move(node), std::move(name), fn);
    const Token& t = cur();
    bool arg_start =
        t.type == TokenType::name || t.type == TokenType::string || t.type == TokenType::integer ||
        t.type == TokenType::floating ||
        (t.type == TokenType::op && (t.value == "(" || t.value == "[" || t.value == "{"));
    if (at_op("(")) {
      test->args = parse_call_args();
    } else if (arg_start && !at_name("else") && !at_name("or") && !at_name("and")) {
      if (at_name("is")) syntax_error(t.line, "You cannot chain multiple tests with is");
      test->args.positional.push_back(parse_postfix(parse_primary()));
    }
    if (negated) return std::make_unique<UnaryExpr>(ExprKind::not_, line, std::move(test));
    return test;
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  // >0 inside an {% if %} or inline if: Jinja defers unknown filters and tests there to runtime.
  int soft_ = 0;
  std::vector<std::string> open_blocks_;
  std::vector<std::pair<int, std::string>> unknown_;  // unknown filters/tests outside soft code
  std::vector<std::set<std::string, std::less<>>> used_names_;  // one per enclosing macro body
};

}  // namespace

Body parse_template(std::string_view source) {
  return Parser(tokenize(source)).parse();
}

}  // namespace hearth::text::jinja
