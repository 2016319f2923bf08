// The byte-level pre-tokenizers of Hugging Face tokenizer.json: `ByteLevel` (GPT-2: optional prefix space, then
// GPT-2's regex unless use_regex is false) and `Sequence` of `Split` steps (a regex or literal pattern, behavior
// Isolated, invert false; Llama-3 and Qwen2) ending in `ByteLevel(use_regex=false)`. Anything else is rejected
// with an error naming the field. Splits text into the pre-tokens that BPE then encodes one by one.
#pragma once

#include <functional>
#include <optional>
#include <string_view>
#include <vector>

#include "data/tokenizer_json.h"
#include "data/tokenizer_regex.h"

namespace aligntrain::data {

class PreTokenizer {
 public:
  // Reads `pre_tokenizer` of a tokenizer.json.
  explicit PreTokenizer(const JsonView& spec);

  // Calls `emit` with each pre-token of `text` (valid UTF-8), in order, as raw bytes (never empty).
  void split(std::string_view text, const std::function<void(std::string_view)>& emit) const;

 private:
  void read_byte_level(const JsonView& spec);
  static Regex read_split(const JsonView& spec);

  std::vector<Regex> splits_;  // Split steps, applied in order
  bool add_prefix_space_ = false;
  std::optional<Regex> byte_level_regex_;  // GPT-2's pattern when ByteLevel.use_regex
};

}  // namespace aligntrain::data
