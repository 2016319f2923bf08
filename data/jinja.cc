// The Jinja engine's entry point: compile (normalise, tokenize, parse) once, render many times.
#include "data/jinja.h"

#include <stdexcept>

#include "data/jinja_lexer.h"
#include "data/jinja_parser.h"

namespace aligntrain::data {

JinjaTemplate::JinjaTemplate(std::string_view source)
    : body_(std::make_unique<jinja::Body>(
          jinja::parse_template(jinja::tokenize_template(jinja::normalize_template_source(source))))) {}

JinjaTemplate::~JinjaTemplate() = default;
JinjaTemplate::JinjaTemplate(JinjaTemplate&&) noexcept = default;
JinjaTemplate& JinjaTemplate::operator=(JinjaTemplate&&) noexcept = default;

JinjaRender JinjaTemplate::render(const nlohmann::ordered_json& variables, const JinjaOptions& options) const {
  if (!variables.is_object()) throw std::invalid_argument("chat template variables must be a JSON object");
  return render(jinja::Value::from_json(variables), options);
}

JinjaRender JinjaTemplate::render(const jinja::Value& variables, const JinjaOptions& options) const {
  if (!variables.is_dict()) throw std::invalid_argument("chat template variables must be a dict");
  return jinja::render_body(*body_, variables, options);
}

}  // namespace aligntrain::data
