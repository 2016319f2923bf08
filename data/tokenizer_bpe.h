// Byte-level BPE from a Hugging Face tokenizer.json, as used by GPT-2, Llama-3 and Qwen2, producing the same ids
// as the `tokenizers` library. Encoding runs the library's pipeline: added tokens are cut out of the raw text
// (those with normalized=false), the rest is normalized (tokenizer_normalizer.h: none, NFC, NFKC, ...) and cut at
// the normalized added tokens, pre-tokenized (tokenizer_pretokenizer.h) and BPE-encoded (tokenizer_bpe_model.h).
// Decoding is the ByteLevel decoder. Any normalizer, pre-tokenizer, model or decoder this does not implement is an
// error, never a silently different tokenizer; `truncation`, `padding` and `post_processor` are ignored (encode()
// adds no special tokens and cuts nothing: the data pipeline does that).
//
// Text that is not valid UTF-8 is encoded as the library would encode its lossy decoding (each maximal
// ill-formed subsequence replaced by U+FFFD).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/tokenizer.h"
#include "data/tokenizer_added_tokens.h"
#include "data/tokenizer_bpe_model.h"
#include "data/tokenizer_json.h"
#include "data/tokenizer_normalizer.h"
#include "data/tokenizer_pretokenizer.h"

namespace aligntrain::data {

class BpeTokenizer final : public Tokenizer {
 public:
  // Loads `path` (a tokenizer.json). Throws std::runtime_error naming the file and the field.
  static std::unique_ptr<BpeTokenizer> from_file(const std::string& path);
  // From a parsed tokenizer.json; `source` names it in errors.
  BpeTokenizer(const nlohmann::json& spec, const std::string& source);

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const override;
  int vocab_size() const override { return vocab_size_; }
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::optional<std::string> id_to_token(int32_t id) const override;

 private:
  explicit BpeTokenizer(const JsonView& root);
  static void check_decoder(const JsonView& root);
  void read_added_tokens(const JsonView& added_tokens);
  void build_id_tables();
  void encode_normalized(std::string_view text, std::vector<int32_t>& ids) const;

  BpeModel model_;
  PreTokenizer pre_tokenizer_;
  Normalizer normalizer_;
  std::vector<AddedToken> added_tokens_;
  std::unordered_map<std::string, int32_t> added_ids_;  // content -> id
  AddedTokenMatcher raw_matcher_;         // added tokens with normalized == false
  AddedTokenMatcher normalized_matcher_;  // added tokens with normalized == true
  int vocab_size_ = 0;
  std::vector<std::optional<std::string>> tokens_;  // id -> token string, added tokens first
  std::vector<std::string> token_bytes_;            // id -> what the ByteLevel decoder makes of it
  std::vector<bool> special_;                       // id -> dropped by decode(skip_special)
};

}  // namespace aligntrain::data
