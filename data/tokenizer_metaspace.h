// The pre-tokenizers of SentencePiece-style tokenizer.json files, as the Hugging Face tokenizers library runs
// them: `Metaspace` (spaces become the replacement character, which is prepended per `prepend_scheme`: "always"
// to every piece, "first" only to the piece that starts the input, "never"; then, if `split`, the text is cut
// in front of each replacement character), `Split` with a literal String pattern (behaviors Removed, Isolated,
// MergedWithPrevious, MergedWithNext; Gemma), and a `Sequence` of these. Anything else is refused with an error
// naming the field.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "data/tokenizer_json.h"

namespace aligntrain::data {

class MetaspacePreTokenizer {
 public:
  // Reads `pre_tokenizer` of a tokenizer.json (an object; null is MetaspacePreTokenizer(), which keeps each
  // piece whole).
  explicit MetaspacePreTokenizer(const JsonView& spec);
  MetaspacePreTokenizer() = default;

  // Calls `emit` with each pre-token of `text` (valid UTF-8, not empty), in order. `starts_input`: whether
  // `text` begins at offset 0 of the original input (what prepend_scheme "first" looks at).
  void split(std::string_view text, bool starts_input, const std::function<void(std::string_view)>& emit) const;

 private:
  enum class Kind { kMetaspace, kSplit };
  enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext };
  enum class Prepend { kAlways, kFirst, kNever };
  struct Step {
    Kind kind;
    std::string pattern;  // kMetaspace: the replacement character; kSplit: the literal pattern
    Behavior behavior = Behavior::kIsolated;
    Prepend prepend = Prepend::kAlways;
    bool split = true;  // kMetaspace
  };
  struct Piece {
    std::string text;
    bool starts_input;
  };

  void read_step(const JsonView& spec);
  static void split_on(const std::string& text, std::string_view pattern, Behavior behavior, bool starts_input,
                       std::vector<Piece>& out);
  void apply(const Step& step, const Piece& piece, std::vector<Piece>& out) const;

  std::vector<Step> steps_;
};

}  // namespace aligntrain::data
