// Parser of the Jinja engine: recursive descent after jinja2/parser.py (see jinja_parser.h).
#include "data/jinja_parser.h"

#include <cerrno>
#include <cstdlib>

#include "data/jinja_error.h"

namespace aligntrain::data::jinja {

namespace {

constexpr int kMaxNesting = 200;  // expression / statement nesting depth

using Type = Token::Type;

class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : t_(tokens) {}

  Body parse() {
    Body body = subparse({});
    if (cur().type != Type::kEof) fail("unexpected token");
    check_names(body, false);
    return body;
  }

 private:
  const Token& cur() const { return t_[i_]; }
  const Token& peek(size_t k = 1) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  void next() {
    if (i_ + 1 < t_.size()) ++i_;
  }

  [[noreturn]] void fail(const std::string& message) const { fail_at(message, cur()); }
  [[noreturn]] void fail_at(const std::string& message, const Token& at) const {
    throw JinjaError(message, at.line, at.column);
  }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case Type::kEof: return "end of template";
      case Type::kBlockEnd: return "end of statement block";
      case Type::kVariableEnd: return "end of print statement";
      case Type::kBlockBegin: return "begin of statement block";
      case Type::kVariableBegin: return "begin of print statement";
      case Type::kData: return "template data";
      case Type::kString: return "string";
      case Type::kInteger:
      case Type::kFloat: return "number";
      default: return "'" + t.text + "'";
    }
  }

  bool is_op(const char* op) const { return cur().type == Type::kOperator && cur().text == op; }
  bool is_name(const char* name) const { return cur().type == Type::kName && cur().text == name; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* name) {
    if (!is_name(name)) return false;
    next();
    return true;
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) fail(std::string("expected '") + op + "', got " + describe(cur()));
  }
  std::string expect_name() {
    if (cur().type != Type::kName) fail("expected name, got " + describe(cur()));
    std::string name = cur().text;
    next();
    return name;
  }
  void expect_block_end() {
    if (cur().type != Type::kBlockEnd) fail("expected end of statement block, got " + describe(cur()));
    next();
  }

  struct DepthGuard {
    explicit DepthGuard(Parser* p) : p_(p) {
      if (++p_->depth_ > kMaxNesting) p_->fail("template nesting too deep (more than 200 levels)");
    }
    ~DepthGuard() { --p_->depth_; }
    Parser* p_;
  };

  ExprPtr node(Expr::Kind kind, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->column = at.column;
    return e;
  }

  // ---- statements ----

  // Parses until a block whose first name is one of `ends` (left unconsumed: the current token is that name) or
  // the end of the template (an error when `ends` is not empty).
  Body subparse(const std::vector<std::string>& ends) {
    DepthGuard guard(this);
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == Type::kEof) {
        if (!ends.empty()) {
          std::string list;
          for (const auto& e : ends) list += (list.empty() ? "'" : " or '") + e + "'";
          fail("unexpected end of template, expected " + list);
        }
        return body;
      }
      if (t.type == Type::kData) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kData;
        s->text = t.text;
        s->line = t.line;
        s->column = t.column;
        body.push_back(std::move(s));
        next();
      } else if (t.type == Type::kVariableBegin) {
        next();
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kOutput;
        s->line = t.line;
        s->column = t.column;
        s->expr = parse_tuple(false, true, {});
        if (cur().type != Type::kVariableEnd) fail("expected end of print statement, got " + describe(cur()));
        next();
        body.push_back(std::move(s));
      } else if (t.type == Type::kBlockBegin) {
        next();
        if (cur().type == Type::kName) {
          for (const auto& e : ends) {
            if (cur().text == e) return body;
          }
        }
        body.push_back(statement(t));
      } else {
        fail("unexpected " + describe(t));
      }
    }
  }

  StmtPtr make(Stmt::Kind kind, const Token& at) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = at.line;
    s->column = at.column;
    return s;
  }

  // Ends a block: the current token is the end name.
  void end_block(const char* name) {
    if (!skip_name(name)) fail(std::string("expected '") + name + "'");
    expect_block_end();
  }

  StmtPtr statement(const Token& open) {
    if (cur().type != Type::kName) fail("tag name expected");
    const Token& tag = cur();
    std::string name = tag.text;
    next();
    if (name == "if") return parse_if(open);
    if (name == "for") return parse_for(open);
    if (name == "set") return parse_set(open);
    if (name == "macro") return parse_macro(open);
    if (name == "call") return parse_call_block(open);
    if (name == "filter") {
      auto s = make(Stmt::Kind::kFilterBlock, open);
      s->expr = parse_filter(nullptr, true);
      expect_block_end();
      s->body = subparse({"endfilter"});
      end_block("endfilter");
      return s;
    }
    if (name == "generation") {
      auto s = make(Stmt::Kind::kGeneration, open);
      expect_block_end();
      s->body = subparse({"endgeneration"});
      end_block("endgeneration");
      return s;
    }
    if (name == "with") {
      auto s = make(Stmt::Kind::kWith, open);
      while (cur().type != Type::kBlockEnd) {
        if (!s->targets.empty()) expect_op(",");
        s->targets.push_back(parse_assign_target({}, false));
        expect_op("=");
        s->conds.push_back(parse_expression(true));
      }
      expect_block_end();
      s->body = subparse({"endwith"});
      end_block("endwith");
      return s;
    }
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) fail_at("'" + name + "' outside of a loop", tag);
      auto s = make(name == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue, open);
      expect_block_end();
      return s;
    }
    fail_at("Encountered unknown tag '" + name + "'.", tag);
  }

  StmtPtr parse_if(const Token& open) {
    auto s = make(Stmt::Kind::kIf, open);
    while (true) {
      s->conds.push_back(parse_tuple(false, false, {}));
      expect_block_end();
      s->bodies.push_back(subparse({"elif", "else", "endif"}));
      if (skip_name("elif")) continue;
      if (skip_name("else")) {
        expect_block_end();
        s->else_body = subparse({"endif"});
      }
      end_block("endif");
      return s;
    }
  }

  StmtPtr parse_for(const Token& open) {
    auto s = make(Stmt::Kind::kFor, open);
    s->target = parse_assign_target({"in"}, false);
    if (!skip_name("in")) fail("expected 'in', got " + describe(cur()));
    s->expr = parse_tuple(false, false, {"recursive"});
    if (skip_name("if")) s->cond = parse_expression(true);
    if (is_name("recursive")) fail("recursive loops are not supported");
    expect_block_end();
    ++loop_depth_;
    s->body = subparse({"endfor", "else"});
    --loop_depth_;
    if (skip_name("else")) {
      expect_block_end();
      s->else_body = subparse({"endfor"});
    }
    end_block("endfor");
    return s;
  }

  StmtPtr parse_set(const Token& open) {
    ExprPtr target = parse_assign_target({}, true);
    if (skip_op("=")) {
      auto s = make(Stmt::Kind::kSet, open);
      s->target = std::move(target);
      s->expr = parse_tuple(false, true, {});
      expect_block_end();
      return s;
    }
    auto s = make(Stmt::Kind::kSetBlock, open);
    if (target->kind != Expr::Kind::kName && target->kind != Expr::Kind::kGetAttr) {
      fail("a block set needs a single name");
    }
    s->target = std::move(target);
    if (is_op("|")) s->expr = parse_filter(nullptr, false);
    expect_block_end();
    int saved = loop_depth_;
    s->body = subparse({"endset"});
    loop_depth_ = saved;
    end_block("endset");
    return s;
  }

  void parse_signature(Stmt& s) {
    expect_op("(");
    while (!is_op(")")) {
      if (!s.params.empty()) expect_op(",");
      if (is_op(")")) break;
      std::string param = expect_name();
      ExprPtr fallback;
      if (skip_op("=")) fallback = parse_expression(true);
      s.params.push_back(param);
      s.defaults.push_back(std::move(fallback));
    }
    expect_op(")");
  }

  StmtPtr parse_macro(const Token& open) {
    auto s = make(Stmt::Kind::kMacro, open);
    s->name = expect_name();
    parse_signature(*s);
    expect_block_end();
    int saved = loop_depth_;
    loop_depth_ = 0;
    s->body = subparse({"endmacro"});
    loop_depth_ = saved;
    end_block("endmacro");
    return s;
  }

  StmtPtr parse_call_block(const Token& open) {
    auto s = make(Stmt::Kind::kCallBlock, open);
    if (is_op("(")) parse_signature(*s);
    const Token& at = cur();
    s->expr = parse_expression(true);
    if (s->expr->kind != Expr::Kind::kCall) fail_at("expected call", at);
    expect_block_end();
    int saved = loop_depth_;
    loop_depth_ = 0;
    s->body = subparse({"endcall"});
    loop_depth_ = saved;
    end_block("endcall");
    return s;
  }

  // name | ns.attr | tuple of names (for / set targets).
  ExprPtr parse_assign_target(const std::vector<std::string>& extra_end, bool with_namespace) {
    const Token& at = cur();
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (tuple_end(extra_end)) break;
      const Token& t = cur();
      std::string name = expect_name();
      ExprPtr target;
      if (with_namespace && is_op(".")) {
        next();
        target = node(Expr::Kind::kGetAttr, t);
        target->a = node(Expr::Kind::kName, t);
        target->a->name = name;
        target->name = expect_name();
      } else {
        if (name == "true" || name == "false" || name == "none" || name == "True" || name == "False" ||
            name == "None") {
          fail_at("can't assign to constant '" + name + "'", t);
        }
        target = node(Expr::Kind::kName, t);
        target->name = name;
      }
      items.push_back(std::move(target));
      if (is_op(",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (items.empty()) fail("expected an assignment target");
      return std::move(items[0]);
    }
    for (const auto& item : items) {
      if (item->kind != Expr::Kind::kName) fail("can't assign to a namespace attribute in a tuple");
    }
    auto tuple = node(Expr::Kind::kTuple, at);
    tuple->children = std::move(items);
    return tuple;
  }

  // ---- expressions ----

  bool tuple_end(const std::vector<std::string>& extra_end) const {
    Type t = cur().type;
    if (t == Type::kVariableEnd || t == Type::kBlockEnd || t == Type::kEof) return true;
    if (t == Type::kOperator && cur().text == ")") return true;
    if (t == Type::kName) {
      for (const auto& e : extra_end) {
        if (cur().text == e) return true;
      }
    }
    return false;
  }

  ExprPtr parse_tuple(bool explicit_parens, bool with_condexpr, const std::vector<std::string>& extra_end) {
    DepthGuard guard(this);
    const Token& at = cur();
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (tuple_end(extra_end)) break;
      items.push_back(parse_expression(with_condexpr));
      if (is_op(",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) fail("Expected an expression, got " + describe(cur()));
    }
    auto tuple = node(Expr::Kind::kTuple, at);
    tuple->children = std::move(items);
    return tuple;
  }

  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  ExprPtr parse_condexpr() {
    DepthGuard guard(this);
    const Token& at = cur();
    ExprPtr expr = parse_or();
    while (skip_name("if")) {
      auto cond = node(Expr::Kind::kCond, at);
      cond->b = parse_or();
      if (skip_name("else")) cond->c = parse_condexpr();
      cond->a = std::move(expr);
      expr = std::move(cond);
    }
    return expr;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      auto e = node(Expr::Kind::kOr, cur());
      next();
      e->a = std::move(left);
      e->b = parse_and();
      left = std::move(e);
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      auto e = node(Expr::Kind::kAnd, cur());
      next();
      e->a = std::move(left);
      e->b = parse_not();
      left = std::move(e);
    }
    return left;
  }

  ExprPtr parse_not() {
    DepthGuard guard(this);
    if (is_name("not")) {
      auto e = node(Expr::Kind::kNot, cur());
      next();
      e->a = parse_not();
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const Token& at = cur();
    ExprPtr first = parse_math1();
    std::vector<ExprPtr> operands;
    std::vector<std::string> ops;
    while (true) {
      if (cur().type == Type::kOperator &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
           cur().text == ">" || cur().text == ">=")) {
        ops.push_back(cur().text);
        next();
      } else if (is_name("in")) {
        ops.push_back("in");
        next();
      } else if (is_name("not") && peek().type == Type::kName && peek().text == "in") {
        ops.push_back("notin");
        next();
        next();
      } else {
        break;
      }
      operands.push_back(parse_math1());
    }
    if (ops.empty()) return first;
    auto e = node(Expr::Kind::kCompare, at);
    e->children.push_back(std::move(first));
    for (auto& o : operands) e->children.push_back(std::move(o));
    e->ops = std::move(ops);
    return e;
  }

  ExprPtr binary(ExprPtr left, const Token& at, std::string op, ExprPtr right) {
    auto e = node(Expr::Kind::kBinary, at);
    e->name = std::move(op);
    e->a = std::move(left);
    e->b = std::move(right);
    return e;
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& at = cur();
      std::string op = at.text;
      next();
      left = binary(std::move(left), at, op, parse_concat());
    }
    return left;
  }

  ExprPtr parse_concat() {
    const Token& at = cur();
    ExprPtr first = parse_math2();
    if (!is_op("~")) return first;
    auto e = node(Expr::Kind::kConcat, at);
    e->children.push_back(std::move(first));
    while (skip_op("~")) e->children.push_back(parse_math2());
    return e;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& at = cur();
      std::string op = at.text;
      next();
      left = binary(std::move(left), at, op, parse_pow());
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const Token& at = cur();
      next();
      left = binary(std::move(left), at, "**", parse_unary(true));
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(this);
    const Token& at = cur();
    ExprPtr e;
    if (skip_op("-")) {
      e = node(Expr::Kind::kNeg, at);
      e->a = parse_unary(false);
    } else if (skip_op("+")) {
      e = node(Expr::Kind::kPos, at);
      e->a = parse_unary(false);
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr parse_primary() {
    DepthGuard guard(this);
    const Token& t = cur();
    switch (t.type) {
      case Type::kName: {
        next();
        auto e = node(Expr::Kind::kConst, t);
        if (t.text == "true" || t.text == "True") e->constant = Value(true);
        else if (t.text == "false" || t.text == "False") e->constant = Value(false);
        else if (t.text == "none" || t.text == "None") e->constant = Value::none();
        else {
          e->kind = Expr::Kind::kName;
          e->name = t.text;
        }
        return e;
      }
      case Type::kString: {
        std::string s;
        while (cur().type == Type::kString) {
          s += cur().text;
          next();
        }
        auto e = node(Expr::Kind::kConst, t);
        e->constant = Value(std::move(s));
        return e;
      }
      case Type::kInteger: {
        next();
        errno = 0;
        long long v = std::strtoll(t.text.c_str(), nullptr, 10);
        if (errno == ERANGE) fail_at("integer literal too large", t);
        auto e = node(Expr::Kind::kConst, t);
        e->constant = Value(static_cast<int64_t>(v));
        return e;
      }
      case Type::kFloat: {
        next();
        auto e = node(Expr::Kind::kConst, t);
        e->constant = Value(std::strtod(t.text.c_str(), nullptr));
        return e;
      }
      case Type::kOperator:
        if (t.text == "(") {
          next();
          ExprPtr e = parse_tuple(true, true, {});
          expect_op(")");
          return e;
        }
        if (t.text == "[") {
          next();
          auto e = node(Expr::Kind::kList, t);
          while (!is_op("]")) {
            if (!e->children.empty()) expect_op(",");
            if (is_op("]")) break;
            e->children.push_back(parse_expression(true));
          }
          expect_op("]");
          return e;
        }
        if (t.text == "{") {
          next();
          auto e = node(Expr::Kind::kDict, t);
          while (!is_op("}")) {
            if (!e->children.empty()) expect_op(",");
            if (is_op("}")) break;
            e->children.push_back(parse_expression(true));
            expect_op(":");
            e->children.push_back(parse_expression(true));
          }
          expect_op("}");
          return e;
        }
        break;
      default: break;
    }
    fail("unexpected " + describe(t));
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      const Token& at = cur();
      if (is_op(".")) {
        next();
        const Token& attr = cur();
        if (attr.type == Type::kName) {
          next();
          auto g = node(Expr::Kind::kGetAttr, at);
          g->a = std::move(e);
          g->name = attr.text;
          e = std::move(g);
        } else if (attr.type == Type::kInteger) {
          next();
          auto g = node(Expr::Kind::kGetItem, at);
          g->a = std::move(e);
          g->b = node(Expr::Kind::kConst, attr);
          g->b->constant = Value(static_cast<int64_t>(std::strtoll(attr.text.c_str(), nullptr, 10)));
          e = std::move(g);
        } else {
          fail("expected name or number");
        }
      } else if (is_op("[")) {
        next();
        std::vector<ExprPtr> args;
        while (!is_op("]")) {
          if (!args.empty()) expect_op(",");
          args.push_back(parse_subscribed());
        }
        expect_op("]");
        auto g = node(Expr::Kind::kGetItem, at);
        g->a = std::move(e);
        if (args.size() == 1) {
          g->b = std::move(args[0]);
        } else {
          g->b = node(Expr::Kind::kTuple, at);
          g->b->children = std::move(args);
        }
        e = std::move(g);
      } else if (is_op("(")) {
        auto call = node(Expr::Kind::kCall, at);
        call->a = std::move(e);
        parse_call_args(*call);
        e = std::move(call);
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscribed() {
    const Token& at = cur();
    ExprPtr start;
    if (!is_op(":")) {
      start = parse_expression(true);
      if (!is_op(":")) return start;
    }
    next();  // ':'
    auto slice = node(Expr::Kind::kSlice, at);
    slice->a = std::move(start);
    if (!is_op(":") && !is_op("]") && !is_op(",")) slice->b = parse_expression(true);
    if (skip_op(":")) {
      if (!is_op("]") && !is_op(",")) slice->c = parse_expression(true);
    }
    return slice;
  }

  void parse_call_args(Expr& call) {
    expect_op("(");
    bool need_comma = false;
    while (!is_op(")")) {
      if (need_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*") || is_op("**")) fail("*args and **kwargs in calls are not supported");
      if (cur().type == Type::kName && peek().type == Type::kOperator && peek().text == "=") {
        std::string key = cur().text;
        next();
        next();
        call.kwargs.emplace_back(key, parse_expression(true));
      } else {
        if (!call.kwargs.empty()) fail("invalid syntax for function call expression");
        call.children.push_back(parse_expression(true));
      }
      need_comma = true;
    }
    expect_op(")");
  }

  std::string dotted_name() {
    std::string name = expect_name();
    while (is_op(".")) {
      next();
      name += "." + expect_name();
    }
    return name;
  }

  // `|name(args)|name...`; `first_without_pipe` for `{% filter name %}`.
  ExprPtr parse_filter(ExprPtr input, bool first_without_pipe) {
    bool first = true;
    while (is_op("|") || (first && first_without_pipe)) {
      if (!(first && first_without_pipe)) next();
      first = false;
      const Token& at = cur();
      auto f = node(Expr::Kind::kFilter, at);
      f->name = dotted_name();
      f->unknown = !is_known_filter(f->name);
      if (is_op("(")) parse_call_args(*f);
      f->a = std::move(input);
      input = std::move(f);
    }
    return input;
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        e = parse_filter(std::move(e), false);
      } else if (is_name("is")) {
        next();
        auto test = node(Expr::Kind::kTest, cur());
        if (skip_name("not")) test->negated = true;
        test->name = dotted_name();
        test->unknown = !is_known_test(test->name);
        if (is_op("(")) {
          parse_call_args(*test);
        } else if ((cur().type == Type::kName || cur().type == Type::kString || cur().type == Type::kInteger ||
                    cur().type == Type::kFloat || is_op("(") || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
          if (is_name("is")) fail("You cannot chain multiple tests with is");
          test->children.push_back(parse_postfix(parse_primary()));
        }
        test->a = std::move(e);
        e = std::move(test);
      } else if (is_op("(")) {
        auto call = node(Expr::Kind::kCall, cur());
        call->a = std::move(e);
        parse_call_args(*call);
        e = std::move(call);
      } else {
        return e;
      }
    }
  }

  // Unknown filters and tests outside soft frames (see jinja_parser.h), in Jinja2's compiler order.
  void check_names(const Expr* e, bool soft) const {
    if (!e) return;
    if (e->kind == Expr::Kind::kCond) soft = true;
    if (e->unknown && !soft) {
      throw JinjaError(std::string("No ") + (e->kind == Expr::Kind::kFilter ? "filter" : "test") + " named '" +
                           e->name + "'.",
                       e->line, e->column);
    }
    check_names(e->a.get(), soft);
    check_names(e->b.get(), soft);
    check_names(e->c.get(), soft);
    for (const auto& c : e->children) check_names(c.get(), soft);
    for (const auto& kw : e->kwargs) check_names(kw.second.get(), soft);
  }

  void check_names(const Body& body, bool soft) const {
    for (const auto& s : body) {
      switch (s->kind) {
        case Stmt::Kind::kIf:
          for (const auto& c : s->conds) check_names(c.get(), true);
          for (const auto& b : s->bodies) check_names(b, true);
          check_names(s->else_body, true);
          break;
        case Stmt::Kind::kFor:
          check_names(s->expr.get(), soft);
          check_names(s->cond.get(), false);
          check_names(s->body, false);
          check_names(s->else_body, false);
          break;
        case Stmt::Kind::kMacro:
          for (const auto& d : s->defaults) check_names(d.get(), false);
          check_names(s->body, false);
          break;
        case Stmt::Kind::kCallBlock:
          check_names(s->expr.get(), soft);
          for (const auto& d : s->defaults) check_names(d.get(), false);
          check_names(s->body, false);
          break;
        case Stmt::Kind::kSetBlock:
        case Stmt::Kind::kFilterBlock:
          check_names(s->expr.get(), soft);
          check_names(s->body, false);
          break;
        case Stmt::Kind::kGeneration: check_names(s->body, false); break;
        case Stmt::Kind::kWith:
          for (const auto& v : s->conds) check_names(v.get(), soft);
          check_names(s->body, false);
          break;
        default:
          check_names(s->expr.get(), soft);
          check_names(s->target.get(), soft);
      }
    }
  }

  const std::vector<Token>& t_;
  size_t i_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Body parse_template(const std::vector<Token>& tokens) { return Parser(tokens).parse(); }

}  // namespace aligntrain::data::jinja
