// See chat_message_json.h.
#include "data/chat_message_json.h"

#include "data/chat_template.h"

namespace aligntrain::data {
namespace {

using nlohmann::ordered_json;

[[noreturn]] void fail(const std::string& field, const std::string& problem) {
  throw MessageFieldError{field, problem};
}

// An optional string field (absent, null, or a string).
void optional_string(const ordered_json& m, const char* key, const std::string& where) {
  const auto it = m.find(key);
  if (it != m.end() && !it->is_string() && !it->is_null()) {
    fail(where + "." + key, "expected a string, got " + it->dump());
  }
}

// One entry of an assistant message's tool_calls: {"type": "function", "function": {"name", "arguments"}, "id"?}.
void check_tool_call(const ordered_json& call, const std::string& where) {
  if (!call.is_object()) {
    fail(where, "expected a tool call {\"type\": \"function\", \"function\": {\"name\", \"arguments\"}}");
  }
  if (const auto type = call.find("type"); type != call.end() && *type != "function") {
    fail(where + ".type", "expected \"function\", got " + type->dump());
  }
  optional_string(call, "id", where);
  const auto function = call.find("function");
  if (function == call.end() || !function->is_object()) {
    fail(where + ".function", function == call.end() ? "missing field (expected {\"name\", \"arguments\"})"
                                                     : "expected an object {\"name\", \"arguments\"}");
  }
  const auto name = function->find("name");
  if (name == function->end() || !name->is_string() || name->get_ref<const std::string&>().empty()) {
    fail(where + ".function.name", name == function->end() ? "missing field" : "expected a non-empty string");
  }
  const auto arguments = function->find("arguments");
  if (arguments == function->end()) fail(where + ".function.arguments", "missing field");
  if (!arguments->is_object() && !arguments->is_string()) {
    fail(where + ".function.arguments", "expected an object or a JSON string, got " + arguments->dump());
  }
}

}  // namespace

Message read_chat_message(const ordered_json& m, const std::string& where) {
  if (!m.is_object()) fail(where, "expected a {\"role\", \"content\"} object");
  const auto role = m.find("role");
  if (role == m.end() || !role->is_string()) fail(where + ".role", "expected a string");
  const std::string& r = role->get_ref<const std::string&>();
  if (!is_chat_role(r)) fail(where + ".role", "unknown role '" + r + "' (expected system, user, assistant or tool)");

  bool calls = false;
  if (const auto it = m.find("tool_calls"); it != m.end() && !it->is_null()) {
    if (r != "assistant") {
      fail(where + ".tool_calls", "only assistant messages make tool calls (this one is " + r + "'s)");
    }
    if (!it->is_array()) fail(where + ".tool_calls", "expected a list of tool calls");
    for (std::size_t i = 0; i < it->size(); ++i) {
      check_tool_call((*it)[i], where + ".tool_calls[" + std::to_string(i) + "]");
    }
    calls = !it->empty();
  }
  if (r == "tool") {
    optional_string(m, "name", where);
    optional_string(m, "tool_call_id", where);
  }
  Message out;
  out.role = r;
  const auto content = m.find("content");
  if (content != m.end() && content->is_string()) {
    out.content = content->get<std::string>();
  } else if (!calls || (content != m.end() && !content->is_null())) {
    fail(where + ".content", calls ? "expected a string or null" : "expected a string");
  }
  // Plain {role, content} messages are rebuilt from the two strings; anything more is passed on as it is, less the
  // keys whose value is null (transformers drops them before rendering: `content: null` reads as no content).
  std::size_t nulls = 0;
  for (const auto& item : m.items()) nulls += item.value().is_null();
  const bool plain = m.size() - nulls == 2 && content != m.end() && content->is_string();
  if (plain) return out;
  if (nulls == 0) {
    out.json = m;
  } else {
    out.json = ordered_json::object();
    for (const auto& [key, value] : m.items()) {
      if (!value.is_null()) out.json[key] = value;
    }
  }
  return out;
}

}  // namespace aligntrain::data
