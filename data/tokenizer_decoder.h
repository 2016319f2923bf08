// The decoders of SentencePiece-style tokenizer.json files, as the Hugging Face tokenizers library chains them:
// each step maps the list of token strings to a new list, and the result is joined. `Replace` (a literal String
// pattern), `ByteFallback` (runs of <0xNN> tokens become their bytes if those are valid UTF-8, else one U+FFFD
// per token), `Fuse` (all tokens into one), `Strip` (up to `start` leading and `stop` trailing `content`
// characters of each token), `Metaspace` (the replacement character becomes a space, and is dropped from the
// first token unless prepend_scheme is "never"), and a `Sequence` of these. A null decoder joins the tokens with
// spaces, as the library does. Anything else is refused with an error naming the field.
#pragma once

#include <string>
#include <vector>

#include "data/tokenizer_json.h"

namespace aligntrain::data {

class Decoder {
 public:
  // Reads `decoder` of a tokenizer.json; a null decoder is Decoder().
  explicit Decoder(const JsonView& spec);
  Decoder() = default;

  // The text of `tokens` (each valid UTF-8).
  std::string decode(std::vector<std::string> tokens) const;

 private:
  enum class Kind { kReplace, kByteFallback, kFuse, kStrip, kMetaspace };
  struct Step {
    Kind kind;
    std::string pattern;  // kReplace: what is replaced; kStrip: the character; kMetaspace: the replacement
    std::string content;  // kReplace: the replacement
    std::size_t start = 0, stop = 0;  // kStrip
    bool drop_first_replacement = true;  // kMetaspace: prepend_scheme is not "never"
  };

  void read_step(const JsonView& spec);
  static void apply(const Step& step, std::vector<std::string>& tokens);

  bool null_ = true;
  std::vector<Step> steps_;
};

}  // namespace aligntrain::data
