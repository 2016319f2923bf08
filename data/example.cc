// See example.h.
#include "data/example.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/data_source.h"
#include "common/errors.h"
#include "data/chat_message_json.h"
#include "data/parquet_rows.h"

namespace aligntrain::data {

// Ordered: messages and template variables reach the template with their keys in the line's order.
using json = nlohmann::ordered_json;

namespace {

struct LineError {
  std::string field, problem;
};

Text parse_text(const json& obj, const char* field) {
  const auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) throw LineError{field, "missing field"};
  Text t;
  if (it->is_string()) {
    t.text = it->get<std::string>();
    return t;
  }
  if (!it->is_array()) throw LineError{field, "expected a string or a list of {\"role\", \"content\"} messages"};
  t.conversational = true;
  for (size_t i = 0; i < it->size(); ++i) {
    try {
      t.messages.push_back(read_chat_message((*it)[i], std::string(field) + "[" + std::to_string(i) + "]"));
    } catch (const MessageFieldError& e) {
      throw LineError{e.field, e.problem};
    }
  }
  if (t.messages.empty()) throw LineError{field, "empty message list"};
  return t;
}

bool text_empty(const Text& t) { return t.conversational ? t.messages.empty() : t.text.empty(); }

DataKind detect(const json& obj) {
  if (obj.contains("chosen") && obj.contains("rejected")) return DataKind::kPreference;
  if (obj.contains("label")) return DataKind::kUnpaired;
  if (obj.contains("completion") || obj.contains("messages")) return DataKind::kSft;
  if (obj.contains("rejected")) return DataKind::kNegatives;
  return DataKind::kPrompts;
}

// `messages` form of SFT: the last message must be the assistant's reply; it becomes the completion.
void split_messages(const json& obj, Example& ex) {
  Text all = parse_text(obj, "messages");
  if (!all.conversational) throw LineError{"messages", "expected a list of {\"role\", \"content\"} messages"};
  if (all.messages.size() < 2 || all.messages.back().role != "assistant") {
    throw LineError{"messages", "the last message must be the assistant's (it is the completion)"};
  }
  Text completion;
  completion.conversational = true;
  completion.messages = {all.messages.back()};
  all.messages.pop_back();
  ex.prompt = all;
  ex.completion = completion;
}

// TRL's "chat_template_kwargs" and "tools" fields as one JSON object of template variables ("" if neither), with
// the keys in the line's order (a template's tojson writes tool schemas as they are).
std::string template_vars(const json& obj) {
  if (!obj.contains("chat_template_kwargs") && !obj.contains("tools")) return "";
  nlohmann::ordered_json vars = nlohmann::ordered_json::object();
  if (const auto it = obj.find("chat_template_kwargs"); it != obj.end() && !it->is_null()) {
    if (!it->is_object()) throw LineError{"chat_template_kwargs", "expected an object of template variables"};
    for (const auto& [k, v] : it->items()) vars[k] = v;
  }
  if (const auto it = obj.find("tools"); it != obj.end()) {
    if (!it->is_array() && !it->is_null()) throw LineError{"tools", "expected a list of tool schemas (or null)"};
    for (size_t i = 0; it->is_array() && i < it->size(); ++i) {
      if (!(*it)[i].is_object()) {
        throw LineError{"tools[" + std::to_string(i) + "]", "expected a tool schema (a JSON object)"};
      }
    }
    vars["tools"] = *it;
  }
  return vars.empty() ? std::string() : vars.dump();
}

Example parse_example(const std::string& line, DataKind kind) {
  json obj;
  try {
    obj = json::parse(line);
  } catch (const json::parse_error& e) {
    throw LineError{"", std::string("invalid JSON: ") + e.what()};
  }
  if (!obj.is_object()) throw LineError{"", "expected a JSON object"};
  Example ex;
  ex.raw = line;
  ex.template_vars = template_vars(obj);
  if (kind == DataKind::kSft && obj.contains("messages") && !obj.contains("prompt")) {
    split_messages(obj, ex);
  } else {
    ex.prompt = parse_text(obj, "prompt");
  }
  switch (kind) {
    case DataKind::kSft:
      if (!ex.completion) ex.completion = parse_text(obj, "completion");
      if (obj.contains("chosen")) ex.chosen = parse_text(obj, "chosen");  // ADPA: the reference answer
      break;
    case DataKind::kPreference: {
      ex.chosen = parse_text(obj, "chosen");
      ex.rejected = parse_text(obj, "rejected");
      if (nlohmann::json(obj["chosen"]) == nlohmann::json(obj["rejected"])) {  // whatever the keys' order
        throw LineError{"rejected", "identical to chosen (the pair expresses no preference)"};
      }
      break;
    }
    case DataKind::kUnpaired: {
      ex.completion = parse_text(obj, "completion");
      const auto it = obj.find("label");
      if (it == obj.end()) throw LineError{"label", "missing field"};
      if (!it->is_boolean()) throw LineError{"label", "expected true or false, got " + it->dump()};
      ex.label = it->get<bool>();
      break;
    }
    case DataKind::kNegatives:
      ex.rejected = parse_text(obj, "rejected");
      break;
    case DataKind::kPrompts:
    case DataKind::kAuto:
      break;
  }
  for (const auto* r : {&ex.completion, &ex.chosen, &ex.rejected}) {
    const char* field = r == &ex.completion ? "completion" : r == &ex.chosen ? "chosen" : "rejected";
    if (*r && text_empty(**r)) throw LineError{field, "empty response"};
    // The encoder renders a prompt and a response together: both plain text, or both messages for the template.
    if (*r && (*r)->conversational != ex.prompt.conversational) {
      throw LineError{field, std::string(ex.prompt.conversational ? "a string, but the prompt is a message list"
                                                                  : "a message list, but the prompt is a string") +
                                 " (both must be strings or both message lists)"};
    }
  }
  return ex;
}

}  // namespace

const char* kind_name(DataKind kind) {
  switch (kind) {
    case DataKind::kSft: return "sft";
    case DataKind::kPreference: return "preference";
    case DataKind::kUnpaired: return "unpaired";
    case DataKind::kNegatives: return "negatives";
    case DataKind::kPrompts: return "prompts";
    case DataKind::kAuto: return "auto";
  }
  return "auto";
}

std::vector<Example> read_examples(const std::string& path, const ReadOptions& options, ReadReport* report,
                                   DataKind* detected) {
  ReadReport local;
  ReadReport& rep = report ? *report : local;
  DataKind kind = options.kind;
  std::vector<Example> out;
  // One record: a JSONL line, or a Parquet row as a JSON object; `where` names it in errors ("FILE:LINE").
  auto consume = [&](const std::string& line, int64_t lineno, const std::string& where) {
    ++rep.lines;
    try {
      if (kind == DataKind::kAuto) {
        try {
          kind = detect(json::parse(line));
        } catch (const json::parse_error&) {
          // reported below by parse_example
        }
      }
      Example ex = parse_example(line, kind == DataKind::kAuto ? DataKind::kPrompts : kind);
      ex.line = lineno;
      ex.index = static_cast<int64_t>(out.size());
      out.push_back(std::move(ex));
    } catch (const LineError& e) {
      const std::string msg = where + ": " + (e.field.empty() ? "" : e.field + ": ") + e.problem;
      if (!options.skip_invalid) throw DataError(msg);
      ++rep.skipped;
      if (rep.first_errors.size() < 5) rep.first_errors.push_back(msg);
    }
  };
  if (is_parquet_source(path)) {
    for_each_parquet_row(path, [&](const ParquetRow& row) { consume(row.json, row.row, parquet_location(row)); });
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw DataError(path + ": cannot open data file");
    std::string line;
    for (int64_t lineno = 1; std::getline(in, line); ++lineno) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      consume(line, lineno, path + ":" + std::to_string(lineno));
    }
  }
  if (out.empty()) {
    throw DataError(path + ": no examples" + (rep.skipped ? " (every line was invalid and skipped)" : " (empty file)"));
  }
  if (detected) *detected = kind;
  return out;
}

namespace {
std::string trim(const std::string& s) {
  const auto a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}
}  // namespace

bool exact_match(const std::string& answer, const Example& example) {
  const Text& c = example.completion.value();
  const std::string& reference = c.conversational ? (c.messages.empty() ? std::string() : c.messages.back().content) : c.text;
  return trim(answer) == trim(reference);
}

}  // namespace aligntrain::data
