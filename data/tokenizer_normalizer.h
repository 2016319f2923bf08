// The normalizers of SentencePiece-style tokenizer.json files (Llama 2, Mistral, Gemma), as the Hugging Face
// tokenizers library applies them: `Prepend` (a string in front of non-empty text), `Replace` (every
// non-overlapping occurrence of a literal String pattern, left to right), the Unicode forms `NFC`, `NFD`, `NFKC`
// and `NFKD` (tokenizer_nfc.h), and a `Sequence` of these, applied in order. `Replace` with a Regex pattern and
// every other kind are refused with an error naming the field, never a different normalisation.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "data/tokenizer_json.h"
#include "data/tokenizer_nfc.h"

namespace aligntrain::data {

class Normalizer {
 public:
  // Reads `normalizer` of a tokenizer.json (an object; a null normalizer is an empty Normalizer()).
  explicit Normalizer(const JsonView& spec);
  Normalizer() = default;

  bool empty() const { return steps_.empty(); }

  // The normalized form of valid UTF-8 `text`.
  std::string normalize(std::string_view text) const;

 private:
  enum class Kind { kPrepend, kReplace, kUnicode };
  struct Step {
    Kind kind;
    std::string pattern;  // kReplace: what is replaced
    std::string content;  // kPrepend: the prefix; kReplace: the replacement
    UnicodeForm form = UnicodeForm::kNfc;  // kUnicode
  };

  void read_step(const JsonView& spec);

  std::vector<Step> steps_;
};

// Every non-overlapping occurrence of `pattern` (not empty) in `text`, left to right, replaced by `content`.
std::string replace_all(std::string_view text, std::string_view pattern, std::string_view content);

}  // namespace aligntrain::data
