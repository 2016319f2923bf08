// Byte-level tokenizer (see tokenizer_byte.h).
#include "data/tokenizer_byte.h"

#include <stdexcept>

#include "data/tokenizer_unicode.h"

namespace aligntrain::data {

ByteTokenizer::ByteTokenizer(SpecialTokensInText special_tokens_in_text)
    : special_tokens_in_text_(special_tokens_in_text) {
  for (std::size_t i = 0; i < kSpecialTokens.size(); ++i) {
    AddedToken token;
    token.id = static_cast<int32_t>(256 + i);
    token.content = std::string(kSpecialTokens[i]);
    token.special = true;
    specials_.add(token.content, token);
  }
  set_special_ids({kBos, kEos, kPad});
}

void ByteTokenizer::append_bytes(std::string_view text, std::vector<int32_t>& ids) {
  for (char c : text) ids.push_back(static_cast<uint8_t>(c));
}

std::vector<int32_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size());
  if (special_tokens_in_text_ == SpecialTokensInText::kAsBytes) {
    append_bytes(text, ids);
    return ids;
  }
  std::vector<TextPiece> pieces;
  specials_.split(text, pieces);
  for (const TextPiece& piece : pieces) {
    if (piece.token_id >= 0) {
      ids.push_back(piece.token_id);
    } else {
      append_bytes(piece.text, ids);
    }
  }
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string bytes;
  bytes.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= kVocabSize) {
      throw std::out_of_range("decode: id " + std::to_string(id) + " has no token (vocabulary size " +
                              std::to_string(kVocabSize) + ")");
    }
    if (id < 256) {
      bytes += static_cast<char>(id);
    } else if (!skip_special) {
      bytes += kSpecialTokens[id - 256];
    }
  }
  return is_valid_utf8(bytes) ? bytes : to_valid_utf8(bytes);
}

std::optional<int32_t> ByteTokenizer::token_to_id(std::string_view token) const {
  if (token.size() == 1) return static_cast<uint8_t>(token[0]);
  for (std::size_t i = 0; i < kSpecialTokens.size(); ++i) {
    if (token == kSpecialTokens[i]) return static_cast<int32_t>(256 + i);
  }
  return std::nullopt;
}

std::optional<std::string> ByteTokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= kVocabSize) return std::nullopt;
  if (id < 256) return std::string(1, static_cast<char>(id));
  return std::string(kSpecialTokens[id - 256]);
}

}  // namespace aligntrain::data
