// Evaluator of the Jinja engine (see jinja_eval.h): a tree walk over jinja_parser.h's statements and expressions.
#include "data/jinja_eval.h"

#include <memory>

#include "data/jinja_builtins.h"
#include "data/jinja_error.h"

namespace aligntrain::data::jinja {

namespace {

struct Scope {
  std::shared_ptr<Scope> parent;
  std::vector<std::pair<std::string, Value>> vars;

  Value* find(const std::string& name) {
    for (Scope* s = this; s; s = s->parent.get()) {
      for (auto& [key, value] : s->vars) {
        if (key == name) return &value;
      }
    }
    return nullptr;
  }
  void set(const std::string& name, Value value) {
    for (auto& [key, v] : vars) {
      if (key == name) {
        v = std::move(value);
        return;
      }
    }
    vars.emplace_back(name, std::move(value));
  }
};
using ScopePtr = std::shared_ptr<Scope>;

enum class Flow { kNormal, kBreak, kContinue };

constexpr int kMaxDepth = 1000;

class Evaluator {
 public:
  Evaluator(const Value& variables, const RenderOptions& options) : vars_(variables), options_(options) {
    env_.max_string_bytes = options.max_output_bytes;
    env_.now = options.now;
    out_ = &result_.text;
  }

  // Empties the namespaces made during the render, which breaks any reference cycle through them (values never
  // outlive a render: it returns text).
  ~Evaluator() {
    for (const auto& weak : *env_.namespaces) {
      if (auto d = weak.lock()) {
        std::vector<std::pair<Value, Value>> items;
        items.swap(d->items);  // destroyed after the swap, so that nothing sees a half-cleared dict
      }
    }
  }

  RenderResult run(const Body& body) {
    auto scope = std::make_shared<Scope>();
    exec_body(body, scope);
    return std::move(result_);
  }

 private:
  // ---- output ----

  void emit(const std::string& text) {
    if (out_->size() + text.size() > options_.max_output_bytes) {
      throw ValueError("output exceeds the limit of " + std::to_string(options_.max_output_bytes) + " bytes");
    }
    out_->append(text);
  }

  // Renders `body` into a fresh buffer and returns it.
  std::string capture(const Body& body, const ScopePtr& scope, Flow* flow = nullptr) {
    std::string buffer;
    std::string* saved = out_;
    out_ = &buffer;
    try {
      Flow f = exec_body(body, scope);
      if (flow) *flow = f;
    } catch (...) {
      out_ = saved;
      throw;
    }
    out_ = saved;
    return buffer;
  }

  // ---- statements ----

  Flow exec_body(const Body& body, const ScopePtr& scope) {
    for (const auto& stmt : body) {
      Flow f = exec(*stmt, scope);
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

  [[noreturn]] void rethrow_at(const ValueError& e, int line, int column) { throw JinjaError(e.what(), line, column); }

  // Counts nested exec / eval frames: templates nest statements, expressions and macro calls.
  struct DepthGuard {
    explicit DepthGuard(int& depth) : depth_(depth) {
      if (++depth_ > kMaxDepth) {
        --depth_;
        throw ValueError("template evaluation nested too deeply");
      }
    }
    ~DepthGuard() { --depth_; }
    int& depth_;
  };

  Flow exec(const Stmt& s, const ScopePtr& scope) {
    try {
      DepthGuard guard(depth_);
      return exec_inner(s, scope);
    } catch (const ValueError& e) {
      rethrow_at(e, s.line, s.column);
    }
  }

  Flow exec_inner(const Stmt& s, const ScopePtr& scope) {
    switch (s.kind) {
      case Stmt::Kind::kData: emit(s.text); return Flow::kNormal;
      case Stmt::Kind::kOutput: emit(eval(*s.expr, scope).to_str()); return Flow::kNormal;
      case Stmt::Kind::kIf:
        for (size_t k = 0; k < s.conds.size(); ++k) {
          if (eval(*s.conds[k], scope).truthy()) return exec_body(s.bodies[k], scope);
        }
        return exec_body(s.else_body, scope);
      case Stmt::Kind::kFor: return exec_for(s, scope);
      case Stmt::Kind::kSet: assign(*s.target, eval(*s.expr, scope), scope); return Flow::kNormal;
      case Stmt::Kind::kSetBlock: {
        Value v(capture(s.body, scope));
        if (s.expr) v = eval_with_hole(*s.expr, scope, v);
        assign(*s.target, v, scope);
        return Flow::kNormal;
      }
      case Stmt::Kind::kFilterBlock: {
        Value v(capture(s.body, scope));
        emit(eval_with_hole(*s.expr, scope, v).to_str());
        return Flow::kNormal;
      }
      case Stmt::Kind::kMacro: scope->set(s.name, make_macro(s, scope)); return Flow::kNormal;
      case Stmt::Kind::kCallBlock: {
        const Expr& call = *s.expr;
        Value caller = make_macro(s, scope, "caller");
        Value fn = eval(*call.a, scope);
        CallArgs args = eval_args(call, scope);
        args.kwargs.emplace_back("caller", caller);
        emit(invoke(fn, args, call).to_str());
        return Flow::kNormal;
      }
      case Stmt::Kind::kWith: {
        std::vector<Value> values;
        for (const auto& v : s.conds) values.push_back(eval(*v, scope));  // in the outer scope
        auto inner = std::make_shared<Scope>();
        inner->parent = scope;
        for (size_t k = 0; k < values.size(); ++k) unpack_into(*s.targets[k], values[k], *inner);
        return exec_body(s.body, inner);
      }
      case Stmt::Kind::kBreak: return Flow::kBreak;
      case Stmt::Kind::kContinue: return Flow::kContinue;
      case Stmt::Kind::kGeneration: {
        Flow flow = Flow::kNormal;
        std::string rendered = capture(s.body, scope, &flow);
        size_t begin = result_.text.size();
        result_.generation_ranges.emplace_back(begin, begin + rendered.size());
        emit(rendered);
        return flow;
      }
    }
    return Flow::kNormal;
  }

  void unpack_into(const Expr& target, const Value& value, Scope& scope) {
    if (target.kind == Expr::Kind::kName) {
      scope.set(target.name, value);
      return;
    }
    std::vector<Value> items = value.iterate();
    if (items.size() != target.children.size()) {
      throw ValueError(items.size() > target.children.size()
                           ? "too many values to unpack (expected " + std::to_string(target.children.size()) + ")"
                           : "not enough values to unpack (expected " + std::to_string(target.children.size()) +
                                 ", got " + std::to_string(items.size()) + ")");
    }
    for (size_t k = 0; k < items.size(); ++k) scope.set(target.children[k]->name, items[k]);
  }

  void assign(const Expr& target, const Value& value, const ScopePtr& scope) {
    if (target.kind == Expr::Kind::kGetAttr) {
      const std::string& ns_name = target.a->name;
      Value* ns = scope->find(ns_name);
      Value global;
      if (!ns) {
        global = lookup(ns_name, scope);
        ns = &global;
      }
      if (!ns->is_namespace()) throw ValueError("cannot assign attribute on non-namespace object");
      if (!target.name.empty() && target.name[0] == '_') {
        throw ValueError("Chat templates cannot store underscore-prefixed attributes on a namespace, but got '" +
                         target.name + "'. Please rename the attribute.");
      }
      ns->dict_ref().set(Value(target.name), value);
      return;
    }
    unpack_into(target, value, *scope);
  }

  Flow exec_for(const Stmt& s, const ScopePtr& scope) {
    Value iterable = eval(*s.expr, scope);
    std::vector<Value> items = iterable.iterate();
    if (s.cond) {
      std::vector<Value> kept;
      for (const auto& item : items) {
        auto probe = std::make_shared<Scope>();
        probe->parent = scope;
        unpack_into(*s.target, item, *probe);
        count_iteration();
        if (eval(*s.cond, probe).truthy()) kept.push_back(item);
      }
      items = std::move(kept);
    }
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      count_iteration();
      auto body_scope = std::make_shared<Scope>();
      body_scope->parent = scope;
      unpack_into(*s.target, items[static_cast<size_t>(i)], *body_scope);
      body_scope->set("loop", loop_object(items, i));
      Flow f = exec_body(s.body, body_scope);
      if (f == Flow::kBreak) break;
    }
    if (n == 0) {
      auto else_scope = std::make_shared<Scope>();
      else_scope->parent = scope;
      return exec_body(s.else_body, else_scope) == Flow::kNormal ? Flow::kNormal : Flow::kNormal;
    }
    return Flow::kNormal;
  }

  void add_work(uint64_t bytes) {
    work_ += bytes;
    if (work_ > options_.max_work_bytes) {
      throw ValueError("the template built more than " + std::to_string(options_.max_work_bytes) +
                       " bytes of values (a value grown in a loop?)");
    }
  }

  void count_iteration() {
    if (++iterations_ > options_.max_loop_iterations) {
      throw ValueError("more than " + std::to_string(options_.max_loop_iterations) + " loop iterations");
    }
  }

  Value loop_object(const std::vector<Value>& items, int64_t i) {
    const int64_t n = static_cast<int64_t>(items.size());
    auto d = std::make_shared<Dict>();
    d->set(Value("index"), Value(i + 1));
    d->set(Value("index0"), Value(i));
    d->set(Value("revindex"), Value(n - i));
    d->set(Value("revindex0"), Value(n - i - 1));
    d->set(Value("first"), Value(i == 0));
    d->set(Value("last"), Value(i == n - 1));
    d->set(Value("length"), Value(n));
    d->set(Value("depth"), Value(int64_t{1}));
    d->set(Value("depth0"), Value(int64_t{0}));
    if (i > 0) d->set(Value("previtem"), items[static_cast<size_t>(i - 1)]);
    if (i + 1 < n) d->set(Value("nextitem"), items[static_cast<size_t>(i + 1)]);
    d->set(Value("cycle"), Value::function("cycle", [i](CallArgs& call) {
             if (call.args.empty()) throw ValueError("no items for cycling given");
             return call.args[static_cast<size_t>(i) % call.args.size()];
           }));
    return Value(d);  // a LoopContext, not a namespace: `{% set loop.x = ... %}` is an error, as in Jinja2
  }

  // A macro (or a call block's `caller`): binds parameters, renders the body in a fresh scope.
  Value make_macro(const Stmt& s, const ScopePtr& defining, const std::string& name_override = "") {
    const Stmt* stmt = &s;
    std::string name = name_override.empty() ? s.name : name_override;
    std::weak_ptr<Scope> weak = defining;
    // The macro keeps its defining scope alive only through the scope that holds it (no cycle): a strong pointer
    // would make scope -> macro -> scope.
    return Value::function(name, [this, stmt, weak, name](CallArgs& call) {
      ScopePtr parent = weak.lock();
      if (!parent) throw ValueError("macro '" + name + "' called after its scope ended");
      if (++call_depth_ > options_.max_call_depth) {
        --call_depth_;
        throw ValueError("macro calls nested more than " + std::to_string(options_.max_call_depth) + " deep");
      }
      struct Unwind {
        int& depth;
        ~Unwind() { --depth; }
      } unwind{call_depth_};
      auto scope = std::make_shared<Scope>();
      scope->parent = parent;
      const auto& params = stmt->params;
      if (call.args.size() > params.size()) {
        throw ValueError("macro '" + name + "' takes not more than " + std::to_string(params.size()) +
                         " argument(s)");
      }
      std::vector<bool> bound(params.size(), false);
      for (size_t k = 0; k < call.args.size(); ++k) {
        scope->set(params[k], call.args[k]);
        bound[k] = true;
      }
      for (const auto& [key, value] : call.kwargs) {
        size_t k = 0;
        while (k < params.size() && params[k] != key) ++k;
        if (k == params.size()) {
          if (key == "caller") {
            scope->set("caller", value);
            continue;
          }
          throw ValueError("macro '" + name + "' takes no keyword argument '" + key + "'");
        }
        if (bound[k]) throw ValueError("macro '" + name + "' got multiple values for argument '" + key + "'");
        scope->set(params[k], value);
        bound[k] = true;
      }
      for (size_t k = 0; k < params.size(); ++k) {
        if (bound[k]) continue;
        if (stmt->defaults[k]) scope->set(params[k], eval(*stmt->defaults[k], scope));
        else scope->set(params[k], Value::undefined("parameter '" + params[k] + "' was not provided"));
      }
      return Value(capture(stmt->body, scope));
    });
  }

  // ---- expressions ----

  Value lookup(const std::string& name, const ScopePtr& scope) {
    if (Value* v = scope->find(name)) return *v;
    if (vars_.is_dict()) {
      if (const Value* v = vars_.dict_ref().find(std::string_view(name))) return *v;
    }
    if (auto g = get_global(env_, name)) return *g;
    return Value::undefined("'" + name + "' is undefined");
  }

  Value eval(const Expr& e, const ScopePtr& scope) {
    try {
      DepthGuard guard(depth_);
      return eval_inner(e, scope);
    } catch (const ValueError& err) {
      rethrow_at(err, e.line, e.column);
    }
  }

  Value eval_with_hole(const Expr& e, const ScopePtr& scope, const Value& hole) {
    Value saved = hole_;
    hole_ = hole;
    Value v = eval(e, scope);
    hole_ = saved;
    return v;
  }

  CallArgs eval_args(const Expr& e, const ScopePtr& scope) {
    CallArgs args;
    for (const auto& c : e.children) args.args.push_back(eval(*c, scope));
    for (const auto& [k, v] : e.kwargs) args.kwargs.emplace_back(k, eval(*v, scope));
    return args;
  }

  Value invoke(const Value& fn, CallArgs& args, const Expr& at) {
    if (fn.is_undefined()) fn.fail_undefined();
    if (!fn.is_callable()) throw ValueError("'" + fn.type_name() + "' object is not callable");
    args.callee = fn.fn_name();
    try {
      return fn.fn()(args);
    } catch (const TemplateRaise& raised) {
      throw JinjaRaisedError(raised.message, at.line, at.column);
    }
  }

  Value eval_inner(const Expr& e, const ScopePtr& scope) {
    switch (e.kind) {
      case Expr::Kind::kConst: return e.constant;
      case Expr::Kind::kName: return lookup(e.name, scope);
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        std::vector<Value> items;
        items.reserve(e.children.size());
        for (const auto& c : e.children) items.push_back(eval(*c, scope));
        return e.kind == Expr::Kind::kList ? Value::list(std::move(items)) : Value::tuple(std::move(items));
      }
      case Expr::Kind::kDict: {
        auto d = std::make_shared<Dict>();
        for (size_t k = 0; k + 1 < e.children.size(); k += 2) {
          Value key = eval(*e.children[k], scope);
          if (key.is_list() && key.list_ref().form != List::Form::kTuple) throw ValueError("unhashable type: 'list'");
          if (key.is_dict() || key.is_undefined()) throw ValueError("unhashable type: '" + key.type_name() + "'");
          d->set(key, eval(*e.children[k + 1], scope));
        }
        return Value(d);
      }
      case Expr::Kind::kGetAttr: return get_attribute(eval(*e.a, scope), e.name);
      case Expr::Kind::kGetItem: {
        Value object = eval(*e.a, scope);
        if (e.b->kind == Expr::Kind::kSlice) {
          const Expr& sl = *e.b;
          auto part = [&](const ExprPtr& p) { return p ? eval(*p, scope) : Value::none(); };
          Value start = part(sl.a), stop = part(sl.b), step = part(sl.c);
          return slice_value(object, start, stop, step);
        }
        return get_item(object, eval(*e.b, scope));
      }
      case Expr::Kind::kSlice: throw ValueError("a slice outside of a subscript");
      case Expr::Kind::kCall: {
        Value fn = eval(*e.a, scope);
        CallArgs args = eval_args(e, scope);
        return invoke(fn, args, e);
      }
      case Expr::Kind::kFilter: {
        Value input = e.a ? eval(*e.a, scope) : hole_;
        CallArgs args = eval_args(e, scope);
        return apply_filter(env_, e.name, input, args);
      }
      case Expr::Kind::kTest: {
        Value v = eval(*e.a, scope);
        CallArgs args = eval_args(e, scope);
        args.callee = e.name;
        bool r = apply_test(e.name, v, args);
        return Value(e.negated ? !r : r);
      }
      case Expr::Kind::kNot: return Value(!eval(*e.a, scope).truthy());
      case Expr::Kind::kNeg:
      case Expr::Kind::kPos: {
        Value v = eval(*e.a, scope);
        if (v.is_undefined()) v.fail_undefined();
        if (!v.is_number()) {
          throw ValueError(std::string("bad operand type for unary ") + (e.kind == Expr::Kind::kNeg ? "-" : "+") +
                           ": '" + v.type_name() + "'");
        }
        if (e.kind == Expr::Kind::kPos) return v.is_bool() ? Value(v.as_int()) : v;
        if (v.is_float()) return Value(-v.as_double());
        if (v.as_int() == INT64_MIN) throw ValueError("integer overflow");
        return Value(-v.as_int());
      }
      case Expr::Kind::kBinary: {
        Value a = eval(*e.a, scope);
        Value b = eval(*e.b, scope);
        Value r = binary_op(env_, e.name, a, b);
        if (r.is_string()) add_work(r.str().size());
        else if (r.is_list()) add_work(r.list_ref().items.size() * sizeof(Value));
        return r;
      }
      case Expr::Kind::kConcat: {
        std::string out;
        for (const auto& c : e.children) {
          out += eval(*c, scope).to_str();
          check_size(env_, out.size());
        }
        add_work(out.size());
        return Value(out);
      }
      case Expr::Kind::kCompare: {
        Value left = eval(*e.children[0], scope);
        for (size_t k = 0; k < e.ops.size(); ++k) {
          Value right = eval(*e.children[k + 1], scope);
          const std::string& op = e.ops[k];
          bool r;
          if (op == "==") r = left.equals(right);
          else if (op == "!=") r = !left.equals(right);
          else if (op == "<") r = left.less(right);
          else if (op == ">") r = right.less(left);
          else if (op == "<=") r = left.equals(right) || left.less(right);
          else if (op == ">=") r = left.equals(right) || right.less(left);
          else if (op == "in") r = contains(right, left);
          else r = !contains(right, left);
          if (!r) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case Expr::Kind::kAnd: {
        Value a = eval(*e.a, scope);
        return a.truthy() ? eval(*e.b, scope) : a;
      }
      case Expr::Kind::kOr: {
        Value a = eval(*e.a, scope);
        return a.truthy() ? a : eval(*e.b, scope);
      }
      case Expr::Kind::kCond:
        if (eval(*e.b, scope).truthy()) return eval(*e.a, scope);
        if (e.c) return eval(*e.c, scope);
        return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                                " evaluated to false and no else section was defined.");
    }
    return Value();
  }

  const Value& vars_;
  const RenderOptions& options_;
  BuiltinEnv env_;
  RenderResult result_;
  std::string* out_;
  Value hole_;
  int64_t iterations_ = 0;
  uint64_t work_ = 0;
  int call_depth_ = 0;
  int depth_ = 0;
};

}  // namespace

RenderResult render_body(const Body& body, const Value& variables, const RenderOptions& options) {
  return Evaluator(variables, options).run(body);
}

}  // namespace aligntrain::data::jinja
