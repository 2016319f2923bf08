// SentencePiece-style BPE from a Hugging Face tokenizer.json (Llama 2, Mistral v0.1-v0.3, TinyLlama, Gemma),
// producing the same ids as the `tokenizers` library: a vocabulary of plain UTF-8 pieces with `byte_fallback`
// (<0xNN> tokens), `unk_token` / `fuse_unk` and `ignore_merges` (tokenizer_bpe_model.h). Encoding runs the
// library's pipeline: added tokens with normalized=false are cut out of the raw text; each remaining piece is
// normalized (tokenizer_normalizer.h: Prepend / Replace / NFC) and cut at the normalized added tokens (matched on
// their normalized form); each remaining piece is pre-tokenized (tokenizer_metaspace.h: none, Metaspace, literal
// Split) and BPE-encoded. Decoding runs the decoder chain (tokenizer_decoder.h) over the token strings (a
// normalized added token reads as its normalized form, as in the library). The post-processor
// (tokenizer_post_processor.h) is applied only by add_special_tokens(); encode() adds no special tokens.
// Anything this does not implement is an error naming the field, never a silently different tokenizer.
//
// Text that is not valid UTF-8 is encoded as the library would encode its lossy decoding.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/tokenizer.h"
#include "data/tokenizer_added_tokens.h"
#include "data/tokenizer_bpe_model.h"
#include "data/tokenizer_decoder.h"
#include "data/tokenizer_json.h"
#include "data/tokenizer_metaspace.h"
#include "data/tokenizer_normalizer.h"
#include "data/tokenizer_post_processor.h"

namespace aligntrain::data {

class SpmBpeTokenizer final : public Tokenizer {
 public:
  // From a parsed tokenizer.json; `source` names it in errors (std::runtime_error naming the file and field).
  SpmBpeTokenizer(const nlohmann::json& spec, const std::string& source);

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const override;
  int vocab_size() const override { return vocab_size_; }
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::optional<std::string> id_to_token(int32_t id) const override;
  std::vector<int32_t> add_special_tokens(const std::vector<int32_t>& a,
                                          const std::vector<int32_t>* b = nullptr) const override;

 private:
  explicit SpmBpeTokenizer(const JsonView& root);
  void read_added_tokens(const JsonView& added_tokens);
  void build_id_tables();

  BpeModel model_;
  Normalizer normalizer_;
  MetaspacePreTokenizer pre_tokenizer_;
  Decoder decoder_;
  std::vector<AddedToken> added_tokens_;
  std::unordered_map<std::string, int32_t> added_ids_;  // content -> id
  AddedTokenMatcher raw_matcher_;         // added tokens with normalized == false
  AddedTokenMatcher normalized_matcher_;  // added tokens with normalized == true, by their normalized form
  int vocab_size_ = 0;
  PostProcessor post_processor_;
  std::vector<std::optional<std::string>> tokens_;  // id -> the string the decoder sees
  std::vector<bool> special_;                       // id -> dropped by decode(skip_special)
};

// Whether a parsed tokenizer.json is byte-level BPE (a ByteLevel decoder or pre-tokenizer) rather than
// SentencePiece-style.
bool is_byte_level_tokenizer(const nlohmann::json& spec);

}  // namespace aligntrain::data
