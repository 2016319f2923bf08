// A Jinja engine for Hugging Face chat templates: renders a template exactly as transformers' apply_chat_template
// does (jinja2's ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks, loop controls, `{% generation %}`,
// raise_exception, strftime_now, a tojson that keeps non-ASCII text), for the subset of Jinja2 that chat templates
// use. The pieces, one concern per file:
//   jinja_lexer     template text -> tokens (whitespace control, trim_blocks, lstrip_blocks)
//   jinja_parser    tokens -> syntax tree (statements, expressions, Jinja2's precedence)
//   jinja_value     values with Python's semantics (truthiness, ==, <, str, repr, json.dumps)
//   jinja_builtins  attributes, methods, filters, tests, globals, operators
//   jinja_eval      the renderer (scopes, loops, macros, generation ranges, limits)
//
//   JinjaTemplate t(text);                                    // throws JinjaError on a syntax error
//   JinjaRender r = t.render(variables);                      // variables: {"messages": [...], "tools": ...,
//                                                             //   "add_generation_prompt": true, "bos_token": ...}
//   r.text; r.generation_ranges;                              // [begin, end) byte ranges of generation blocks
// Errors (data/jinja_error.h): JinjaError (template syntax / unknown filter or test / rendering error, with line
// and column) and JinjaRaisedError (raise_exception's message, verbatim).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "data/jinja_error.h"
#include "data/jinja_eval.h"
#include "data/jinja_value.h"

namespace aligntrain::data {

using JinjaOptions = jinja::RenderOptions;
using JinjaRender = jinja::RenderResult;

class JinjaTemplate {
 public:
  explicit JinjaTemplate(std::string_view source);
  ~JinjaTemplate();
  JinjaTemplate(JinjaTemplate&&) noexcept;
  JinjaTemplate& operator=(JinjaTemplate&&) noexcept;

  // `variables` must be a JSON object (its keys are the template's variables, in insertion order).
  JinjaRender render(const nlohmann::ordered_json& variables, const JinjaOptions& options = {}) const;
  // `variables`: a dict value.
  JinjaRender render(const jinja::Value& variables, const JinjaOptions& options = {}) const;

 private:
  std::unique_ptr<jinja::Body> body_;
};

// One-shot: compile and render.
inline std::string render_jinja(std::string_view source, const nlohmann::ordered_json& variables,
                                const JinjaOptions& options = {}) {
  return JinjaTemplate(source).render(variables, options).text;
}

}  // namespace aligntrain::data
