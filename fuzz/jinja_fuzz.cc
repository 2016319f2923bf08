// libFuzzer target for the Jinja engine (data/jinja.h): the input is a chat template, optionally followed by a NUL
// byte and the JSON of the template's variables (a messages list, or an object of variables; anything unparsable
// falls back to a small conversation). The template is compiled and rendered under tight limits. The only
// exceptions allowed out are JinjaError and JinjaRaisedError; anything else escapes and is reported as a crash.
// What a render returns must be consistent: every generation range lies inside the text, begin <= end.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "data/jinja.h"

namespace {

using aligntrain::data::JinjaError;
using aligntrain::data::JinjaOptions;
using aligntrain::data::JinjaRaisedError;
using aligntrain::data::JinjaRender;
using aligntrain::data::JinjaTemplate;

void require(bool condition) {
  if (!condition) __builtin_trap();
}

nlohmann::ordered_json variables_from(const std::string& json_text) {
  nlohmann::ordered_json vars = nlohmann::ordered_json::object();
  auto parsed = nlohmann::ordered_json::parse(json_text, nullptr, false);
  if (parsed.is_object()) {
    vars = parsed;
  } else if (parsed.is_array()) {
    vars["messages"] = parsed;
  } else {
    vars["messages"] = nlohmann::ordered_json::parse(
        R"([{"role": "system", "content": "sys"}, {"role": "user", "content": "hi é"},
            {"role": "assistant", "content": "<think>t</think>yo", "tool_calls": [{"type": "function",
             "function": {"name": "f", "arguments": {"a": 1, "b": [true, null, 2.5]}}}]},
            {"role": "tool", "content": "42"}])");
    vars["tools"] = nlohmann::ordered_json::parse(
        R"([{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties":
            {"a": {"type": "integer"}}, "required": ["a"]}}}])");
  }
  if (!vars.contains("add_generation_prompt")) vars["add_generation_prompt"] = true;
  if (!vars.contains("bos_token")) vars["bos_token"] = "<s>";
  if (!vars.contains("eos_token")) vars["eos_token"] = "</s>";
  return vars;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  size_t nul = input.find('\0');
  std::string source = input.substr(0, nul);
  std::string json_text = nul == std::string::npos ? "" : input.substr(nul + 1);
  JinjaOptions options;
  options.max_output_bytes = 1 << 20;
  options.max_loop_iterations = 20000;
  options.max_call_depth = 20;
  options.max_work_bytes = 64 << 20;
  options.now = 1721995200;
  try {
    JinjaTemplate tmpl(source);
    JinjaRender r = tmpl.render(variables_from(json_text), options);
    require(r.text.size() <= options.max_output_bytes);
    for (const auto& [begin, end] : r.generation_ranges) require(begin <= end && end <= r.text.size());
  } catch (const JinjaError& e) {
    require(e.line() >= 1 && e.column() >= 1);
  } catch (const JinjaRaisedError&) {
  }
  return 0;
}
