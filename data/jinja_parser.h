// Parser of the Jinja engine (data/jinja.h): tokens -> syntax tree, with Jinja2's grammar and precedence
// (lowest first): `a if c else b`, or, and, not, comparisons (== != < <= > >= in, not in; chained), + -, ~,
// * / // %, **, unary - +, then postfix (.attr, [item], [a:b:c], (args)) and filters/tests (`|f(...)`, `is [not] t`).
// Statements: if/elif/else, for (unpacking, `if` filter, else), set (=, namespace attributes, block form with
// filters), macro, call, filter, break, continue, raw, and transformers' `{% generation %}`.
// Unknown filters and tests are reported here, at compile time, as Jinja2 does -- except inside `if` statements
// and `a if c else b` expressions (Jinja2's "soft" frames, up to the next loop, macro or block), where they are an
// error only if evaluated, so that `{% if 'x' is filter %}{{ v | x }}{% endif %}` compiles.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/jinja_lexer.h"
#include "data/jinja_value.h"

namespace aligntrain::data::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kConst,     // constant
    kName,      // name
    kList,      // children
    kTuple,     // children
    kDict,      // children: key, value, key, value...
    kGetAttr,   // a.name
    kGetItem,   // a[b]
    kSlice,     // [a:b:c], each may be null (only as kGetItem's b)
    kCall,      // a(children..., kwargs...)
    kFilter,    // a|name(children..., kwargs...); a is null inside a filter block or set-block filter
    kTest,      // a is [not] name(children...)  (negated)
    kNot,       // not a
    kNeg,       // -a
    kPos,       // +a
    kBinary,    // a op b, op: + - * / // % **
    kConcat,    // children joined with ~
    kCompare,   // children[0] ops[0] children[1] ops[1] ...
    kAnd,       // a and b
    kOr,        // a or b
    kCond,      // a if b else c (c may be null)
  };
  Kind kind;
  int line = 0;
  int column = 0;
  Value constant;
  std::string name;  // kName, kGetAttr attribute, kFilter / kTest name, kBinary operator
  std::vector<ExprPtr> children;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
  ExprPtr a, b, c;
  bool negated = false;
  bool unknown = false;  // a kFilter / kTest whose name is not known (an error where Jinja2's compiler says so)
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    kData,         // text
    kOutput,       // {{ expr }}
    kIf,           // conds[i] -> bodies[i]; else_body
    kFor,          // for target in expr [if cond] body [else else_body]
    kSet,          // set target = expr
    kSetBlock,     // set target [| filter] body endset; filter: a kFilter chain whose innermost a is null
    kMacro,        // macro name(params=defaults) body
    kCallBlock,    // call(params) expr body
    kFilterBlock,  // filter chain body
    kBreak,
    kContinue,
    kGeneration,   // generation body endgeneration
    kWith,         // with targets[i] = conds[i], ... body endwith (a new scope)
  };
  Kind kind;
  int line = 0;
  int column = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr target;
  ExprPtr cond;  // kFor's `if` filter
  std::vector<ExprPtr> conds;
  std::vector<ExprPtr> targets;  // kWith
  std::vector<Body> bodies;
  Body body;
  Body else_body;
  std::string name;                   // macro name
  std::vector<std::string> params;    // macro / call-block parameters
  std::vector<ExprPtr> defaults;      // aligned with params; null = required
};

// The whole template. Throws JinjaError for a syntax error.
Body parse_template(const std::vector<Token>& tokens);

// Whether a filter / test of this name exists (data/jinja_builtins.cc).
bool is_known_filter(const std::string& name);
bool is_known_test(const std::string& name);

}  // namespace aligntrain::data::jinja
