// The text of a JSONL example that data selection compares (select.text): named fields concatenated without a
// separator, e.g. prompt+completion. A field holding a message list contributes its messages' contents joined by
// "\n"; in the messages form of SFT data, `prompt` is every message but the last and `completion` the last.
#pragma once

#include <string>
#include <vector>

#include "data/example.h"

namespace aligntrain::data {

// "prompt+completion" -> {"prompt", "completion"}; empty: the default of `kind` (prompt+completion for sft and
// unpaired data, prompt+chosen for pairs, prompt+rejected for negatives, prompt for prompts).
std::vector<std::string> text_fields(const std::string& spec, DataKind kind);

// "prompt+completion" for {"prompt", "completion"}: the fields as select.text writes them.
std::string join_fields(const std::vector<std::string>& fields);

// The text of one line (a JSON object) of `path`. Throws DataError "PATH:LINE: FIELD: ..." when a field is missing
// or not text.
std::string example_text(const std::string& json_line, const std::vector<std::string>& fields, const std::string& path,
                         int64_t line);

// One text per example of a file read with read_examples (the examples' raw lines).
struct SelectionTexts {
  std::vector<std::string> texts;
  std::vector<int64_t> lines;  // 1-based line of each text in the file
  DataKind kind = DataKind::kAuto;
  std::vector<std::string> fields;
};
SelectionTexts read_selection_texts(const std::string& path, const std::string& spec, bool skip_invalid);

}  // namespace aligntrain::data
