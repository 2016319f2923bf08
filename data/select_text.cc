// See select_text.h.
#include "data/select_text.h"

#include <nlohmann/json.hpp>

#include "common/errors.h"

namespace aligntrain::data {

using nlohmann::json;

std::vector<std::string> text_fields(const std::string& spec, DataKind kind) {
  if (spec.empty()) {
    switch (kind) {
      case DataKind::kPreference: return {"prompt", "chosen"};
      case DataKind::kNegatives: return {"prompt", "rejected"};
      case DataKind::kPrompts: return {"prompt"};
      default: return {"prompt", "completion"};
    }
  }
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= spec.size()) {
    const size_t end = std::min(spec.find('+', start), spec.size());
    out.push_back(spec.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string join_fields(const std::vector<std::string>& fields) {
  std::string spec;
  for (const auto& f : fields) spec += (spec.empty() ? "" : "+") + f;
  return spec;
}

namespace {

// Contents of messages [begin, end) joined by "\n" (an assistant message's tool calls as their JSON after its content,
// which they let be null or absent); throws the problem as a string.
std::string contents(const json& messages, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end; ++i) {
    const json& m = messages[i];
    const auto c = m.is_object() ? m.find("content") : m.end();
    const auto calls = m.is_object() ? m.find("tool_calls") : m.end();
    const bool has_calls = calls != m.end() && calls->is_array() && !calls->empty();
    const bool has_text = c != m.end() && c->is_string();
    if (!m.is_object() || (!has_text && !(has_calls && (c == m.end() || c->is_null())))) {
      throw std::string("[" + std::to_string(i) + "].content: expected a string");
    }
    if (i > begin) out += '\n';
    if (has_text) out += c->get_ref<const std::string&>();
    if (has_calls) out += calls->dump();
  }
  return out;
}

}  // namespace

std::string example_text(const std::string& json_line, const std::vector<std::string>& fields, const std::string& path,
                         int64_t line) {
  const std::string where = path + ":" + std::to_string(line) + ": ";
  json obj;
  try {
    obj = json::parse(json_line);
  } catch (const json::parse_error& e) {
    throw DataError(where + "invalid JSON: " + e.what());
  }
  if (!obj.is_object()) throw DataError(where + "expected a JSON object");
  std::string text;
  for (const auto& field : fields) {
    try {
      const auto it = obj.find(field);
      if (it != obj.end() && it->is_string()) {
        text += it->get_ref<const std::string&>();
      } else if (it != obj.end() && it->is_array()) {
        text += contents(*it, 0, it->size());
      } else if (it != obj.end() && !it->is_null()) {
        throw std::string(": expected a string or a list of messages");
      } else if (const auto m = obj.find("messages");
                 (field == "prompt" || field == "completion") && m != obj.end() && m->is_array() && !m->empty()) {
        // The messages form of SFT data: the last message is the completion.
        text += field == "prompt" ? contents(*m, 0, m->size() - 1) : contents(*m, m->size() - 1, m->size());
      } else {
        throw std::string(": missing field");
      }
    } catch (const std::string& problem) {
      throw DataError(where + field + problem + " (select.text is " + join_fields(fields) + ")");
    }
  }
  return text;
}

SelectionTexts read_selection_texts(const std::string& path, const std::string& spec, bool skip_invalid) {
  ReadOptions ro;
  ro.skip_invalid = skip_invalid;
  SelectionTexts out;
  const auto examples = read_examples(path, ro, nullptr, &out.kind);
  out.fields = text_fields(spec, out.kind);
  out.texts.reserve(examples.size());
  for (const auto& ex : examples) {
    out.texts.push_back(example_text(ex.raw, out.fields, path, ex.line));
    out.lines.push_back(ex.line);
  }
  return out;
}

}  // namespace aligntrain::data
