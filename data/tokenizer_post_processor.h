// The post-processor of a tokenizer.json, which adds the special tokens (BOS, EOS) around encoded text when the
// caller asks for them (Hugging Face's add_special_tokens=True): `TemplateProcessing` (Llama 2, Mistral, Gemma:
// the `single` and `pair` templates of SpecialToken and Sequence A/B pieces, with the ids of each special token
// from `special_tokens`), `ByteLevel` (adds nothing), or null (adds nothing). Anything else is refused with an
// error naming the field.
#pragma once

#include <cstdint>
#include <vector>

#include "data/tokenizer_json.h"

namespace aligntrain::data {

class PostProcessor {
 public:
  // Reads `post_processor` of a tokenizer.json; `vocab_size` bounds the special tokens' ids. Null is
  // PostProcessor().
  PostProcessor(const JsonView& spec, int vocab_size);
  PostProcessor() = default;

  // `a` (and `b` for a pair, when not null) with the template's special tokens; type ids are not kept.
  std::vector<int32_t> apply(const std::vector<int32_t>& a, const std::vector<int32_t>* b = nullptr) const;

 private:
  // One piece of a template: the ids of a special token, or sequence A (0) / B (1).
  struct Piece {
    std::vector<int32_t> ids;
    int sequence = -1;
  };
  static std::vector<Piece> read_template(const JsonView& pieces, const JsonView& special_tokens, int vocab_size);

  bool templated_ = false;
  std::vector<Piece> single_, pair_;
};

}  // namespace aligntrain::data
