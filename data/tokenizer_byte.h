// The byte-level tokenizer of aligntrain's embedded tiny models: no files, no training, and every string encodes.
// Ids 0..255 are the bytes themselves; then the special tokens
//   256 <|bos|>   257 <|eos|>   258 <|pad|>   259 <|im_start|>   260 <|im_end|>
// for a vocabulary of 261. By default special-token text inside the input ("<|eos|>") is encoded as the special
// id, as Hugging Face does with added tokens; SpecialTokensInText::kAsBytes encodes it byte by byte instead.
// Bytes are encoded as they are, valid UTF-8 or not; decode() returns valid UTF-8 (see Tokenizer::decode).
#pragma once

#include <array>
#include <string_view>

#include "data/tokenizer.h"
#include "data/tokenizer_added_tokens.h"

namespace aligntrain::data {

class ByteTokenizer final : public Tokenizer {
 public:
  static constexpr int32_t kBos = 256, kEos = 257, kPad = 258, kImStart = 259, kImEnd = 260;
  static constexpr int kVocabSize = 261;
  // The special tokens' text, indexed by id - 256.
  static constexpr std::array<std::string_view, 5> kSpecialTokens = {"<|bos|>", "<|eos|>", "<|pad|>",
                                                                      "<|im_start|>", "<|im_end|>"};

  enum class SpecialTokensInText { kParse, kAsBytes };
  explicit ByteTokenizer(SpecialTokensInText special_tokens_in_text = SpecialTokensInText::kParse);

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const override;
  int vocab_size() const override { return kVocabSize; }
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::optional<std::string> id_to_token(int32_t id) const override;

 private:
  static void append_bytes(std::string_view text, std::vector<int32_t>& ids);

  SpecialTokensInText special_tokens_in_text_;
  AddedTokenMatcher specials_;
};

}  // namespace aligntrain::data
