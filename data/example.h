// Training examples read from JSONL (DESIGN.md §4, TRL's field names). One reader for every data kind: each line is
// a JSON object; which fields are required depends on the kind. A malformed line is a DataError naming
// file:line and the field, unless skip_invalid is set, in which case it is counted and its line number kept.
// Parquet data (a .parquet file, a folder of them or a glob of shards: common/data_source.h) is read the same way,
// a row as a line (data/parquet_rows.h): Example::line is the row's 1-based number across the files, and errors
// name "FILE: row group G, row R".
//
//   sft         {"prompt", "completion"} or {"messages": [{"role", "content"}, ...]} (the last assistant message is
//               the completion, everything before it the prompt); an optional "chosen" is read too (ADPA's
//               reference answer next to the student's own completion)
//   preference  {"prompt", "chosen", "rejected"}
//   unpaired    {"prompt", "completion", "label": bool}
//   negatives   {"prompt", "rejected"}
//   prompts     {"prompt"}
// Any kind may carry TRL's per-example chat template variables: "chat_template_kwargs" (an object) and "tools" (a
// list of tool schemas), kept in Example::template_vars.
// Text fields are strings, or message lists for conversational data (rendered by a chat template later). A line's
// prompt and responses are all strings or all message lists. A message's role is system, user, assistant or tool;
// assistant messages may make tool calls and tool messages carry their results (data/chat_message_json.h: the
// OpenAI / Hugging Face shape, passed to the template as transformers passes it). Anything else is an invalid line
// like a missing field, named FILE:LINE and the field before any model loads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace aligntrain::data {

enum class DataKind { kSft, kPreference, kUnpaired, kNegatives, kPrompts, kAuto };

struct Message {
  std::string role;     // system | user | assistant | tool
  std::string content;  // "" for an assistant message with tool calls and no (or null) content
  // The message object as the line has it (keys in its order) when it carries more than a string role and content
  // (tool_calls, a tool result's name / tool_call_id, a null content, other keys); null for plain messages.
  nlohmann::ordered_json json;
};

// A prompt or response: plain text, or a list of chat messages.
struct Text {
  std::string text;
  std::vector<Message> messages;
  bool conversational = false;
};

struct Example {
  int64_t line = 0;   // 1-based line number in the file
  int64_t index = 0;  // 0-based position among the valid examples
  Text prompt;
  std::optional<Text> completion, chosen, rejected;
  std::optional<bool> label;
  std::string raw;  // the line as read (generate copies the input object into its output)
  // The line's own chat template variables as a JSON object ("" if none): the items of TRL's
  // "chat_template_kwargs" field (an object) and "tools" (a list of tool schemas, or null).
  std::string template_vars;
};

struct ReadReport {
  int64_t lines = 0;    // non-empty lines seen
  int64_t skipped = 0;  // invalid lines skipped (skip_invalid)
  std::vector<std::string> first_errors;  // up to 5 messages of skipped lines
};

struct ReadOptions {
  DataKind kind = DataKind::kAuto;  // kAuto: decided by the fields of the first valid line
  bool skip_invalid = false;
};

// Reads every example of `path`. Throws DataError ("FILE:LINE: FIELD: problem") on the first invalid line unless
// options.skip_invalid; an empty file (no examples) is always an error.
std::vector<Example> read_examples(const std::string& path, const ReadOptions& options, ReadReport* report = nullptr,
                                   DataKind* detected = nullptr);

// The kind whose required fields the example has (preference > unpaired > sft > negatives > prompts).
const char* kind_name(DataKind kind);

// Exact match of an answer against the example's completion (the last message's content for conversational data),
// both without leading and trailing whitespace: what `eval` stages count and the `exact_match` reward scores.
// The example must have a completion.
bool exact_match(const std::string& answer, const Example& example);

}  // namespace aligntrain::data
