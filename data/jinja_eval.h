// Evaluator of the Jinja engine (data/jinja.h): renders a parsed template with Jinja2's runtime semantics:
// scopes (a for-loop iteration and a macro call each get a fresh scope; `if` and top-level `set` do not),
// the `loop` object, macros with defaults and `caller`, namespaces, `{% generation %}` byte ranges as
// transformers' AssistantTracker reports them, and limits that keep hostile templates finite.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "data/jinja_parser.h"
#include "data/jinja_value.h"

namespace aligntrain::data::jinja {

struct RenderOptions {
  size_t max_output_bytes = 64u << 20;      // also the limit of any one string or list built while rendering
  int64_t max_loop_iterations = 10000000;   // all for-loop iterations of one render together
  int max_call_depth = 100;                 // nested macro calls
  // Bytes of strings and lists built by operators (+, *, ~) over the whole render: bounds the quadratic work of a
  // template that grows a value in a loop (each step copies it).
  uint64_t max_work_bytes = uint64_t{4} << 30;
  std::optional<std::time_t> now;          // strftime_now's time; unset: the current time
};

struct RenderResult {
  std::string text;
  // [begin, end) byte offsets of what each {% generation %} block rendered, in the order the blocks finished.
  // As in transformers, `begin` is the length of the top-level output when the block finished, so a block rendered
  // inside a macro or a `set` block reports where the top-level output stood, not where its text ends up.
  std::vector<std::pair<size_t, size_t>> generation_ranges;
};

// `variables`: a dict (messages, tools, add_generation_prompt, bos_token, ...). Throws JinjaError (with the
// position of the expression or statement at fault) or JinjaRaisedError.
RenderResult render_body(const Body& body, const Value& variables, const RenderOptions& options);

}  // namespace aligntrain::data::jinja
