// One chat message of a data line, read and checked as transformers' apply_chat_template receives it (the OpenAI /
// Hugging Face shape):
//   {"role": "system" | "user" | "assistant", "content": "..."}
//   {"role": "assistant", "content": "..." | null | absent,
//    "tool_calls": [{"type": "function", "id": "...", "function": {"name": "...", "arguments": {...} | "..."}}]}
//   {"role": "tool", "content": "...", "name": "...", "tool_call_id": "..."}   (name and tool_call_id optional)
// A message with more than a string role and content keeps its JSON object (keys in the line's order), which a Jinja
// template receives as transformers' apply_chat_template passes it: without the keys whose value is null (so
// `"content": null` is no content, `"tool_calls": null` no tool calls); anything else a message carries is passed
// through unchecked, as transformers does.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "data/example.h"

namespace aligntrain::data {

// What is wrong with a message: the field ("messages[2].tool_calls[0].function.name") and the problem.
struct MessageFieldError {
  std::string field, problem;
};

// The message `m`, found at `where` (say "messages[2]"). Throws MessageFieldError.
Message read_chat_message(const nlohmann::ordered_json& m, const std::string& where);

}  // namespace aligntrain::data
