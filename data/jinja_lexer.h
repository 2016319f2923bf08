// Lexer of the Jinja engine (data/jinja.h): template text -> tokens, as Jinja2's lexer splits it in the environment
// transformers compiles chat templates with (trim_blocks and lstrip_blocks on, keep_trailing_newline off):
//   - "\r\n" and "\r" become "\n", and one trailing newline of the template is dropped;
//   - `{%-`, `{{-`, `{#-` strip all whitespace before the tag; `-%}`, `-}}`, `-#}` all whitespace after it;
//   - trim_blocks: the first newline after `%}` or `#}` is dropped (`+%}` keeps it);
//   - lstrip_blocks: spaces and tabs from the start of a line up to `{%` or `{#` are dropped (`{%+` keeps them);
//   - `{% raw %}...{% endraw %}` is text; comments are dropped; inside tags `}}`/`%}` only end the tag when
//     brackets are balanced.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace aligntrain::data::jinja {

struct Token {
  enum class Type { kData, kVariableBegin, kVariableEnd, kBlockBegin, kBlockEnd, kName, kString, kInteger, kFloat,
                    kOperator, kEof };
  Type type;
  std::string text;  // data text, name, decoded string, operator, or the number's source text
  int line = 1;
  int column = 1;
};

// The template text with newlines normalised and the one trailing newline dropped (what positions refer to).
std::string normalize_template_source(std::string_view source);

// Throws JinjaError (data/jinja.h) for a lexical error (unterminated tag, comment or string, unexpected character,
// unbalanced brackets).
std::vector<Token> tokenize_template(const std::string& normalized_source);

}  // namespace aligntrain::data::jinja
