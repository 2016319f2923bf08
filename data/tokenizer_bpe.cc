// tokenizer.json loading and the encode/decode pipeline of byte-level BPE (see tokenizer_bpe.h).
#include "data/tokenizer_bpe.h"

#include <stdexcept>

#include "data/tokenizer_byte_level.h"
#include "data/tokenizer_unicode.h"

namespace aligntrain::data {

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_file(const std::string& path) {
  const nlohmann::json spec = read_json_file(path);
  return std::make_unique<BpeTokenizer>(spec, path);
}

BpeTokenizer::BpeTokenizer(const nlohmann::json& spec, const std::string& source)
    : BpeTokenizer(JsonView(spec, source)) {}

BpeTokenizer::BpeTokenizer(const JsonView& root)
    : model_(root["model"], BpeModel::Alphabet::kByteLevel),
      pre_tokenizer_(root["pre_tokenizer"]),
      normalizer_(root.get("normalizer") ? Normalizer(*root.get("normalizer")) : Normalizer()) {
  check_decoder(root);
  read_added_tokens(root["added_tokens"]);
  build_id_tables();
}

void BpeTokenizer::check_decoder(const JsonView& root) {
  const JsonView decoder = root["decoder"];
  if (decoder.is_null()) decoder.fail("null decoder is not supported (byte-level BPE needs the ByteLevel decoder)");
  if (decoder["type"].string() != "ByteLevel") {
    decoder["type"].fail("unsupported decoder '" + decoder["type"].string() + "' (supported: ByteLevel)");
  }
}

void BpeTokenizer::read_added_tokens(const JsonView& added_tokens) {
  for (std::size_t i = 0; i < added_tokens.array().size(); ++i) {
    const JsonView item = added_tokens[i];
    AddedToken token;
    const int64_t id = item["id"].integer();
    if (id < 0 || id > kMaxTokenId) {
      item["id"].fail("id " + std::to_string(id) + " out of range (0.." + std::to_string(kMaxTokenId) + ")");
    }
    token.id = static_cast<int32_t>(id);
    token.content = item["content"].string();
    token.single_word = item["single_word"].boolean();
    token.lstrip = item["lstrip"].boolean();
    token.rstrip = item["rstrip"].boolean();
    token.normalized = item["normalized"].boolean();
    token.special = item["special"].boolean();
    const std::string pattern = token.normalized ? normalizer_.normalize(token.content) : token.content;
    try {
      (token.normalized ? normalized_matcher_ : raw_matcher_).add(pattern, token);
    } catch (const std::invalid_argument& e) {
      item.fail(e.what());
    }
    added_ids_[token.content] = token.id;
    added_tokens_.push_back(std::move(token));
  }
}

void BpeTokenizer::build_id_tables() {
  vocab_size_ = model_.id_limit();
  for (const AddedToken& token : added_tokens_) vocab_size_ = std::max(vocab_size_, token.id + 1);
  tokens_.assign(vocab_size_, std::nullopt);
  for (int32_t id = 0; id < model_.id_limit(); ++id) {
    if (const std::string* token = model_.id_to_token(id)) tokens_[id] = *token;
  }
  std::unordered_set<std::string> special_contents;
  for (const AddedToken& token : added_tokens_) {
    // As the library's decode: a normalized added token reads as its normalized form.
    tokens_[token.id] = token.normalized ? normalizer_.normalize(token.content) : token.content;
    if (token.special) special_contents.insert(token.content);
  }
  token_bytes_.assign(vocab_size_, std::string());
  special_.assign(vocab_size_, false);
  for (int32_t id = 0; id < vocab_size_; ++id) {
    if (!tokens_[id]) continue;
    // The ByteLevel decoder maps a token's characters back to bytes, or keeps its text if one is not byte-level.
    token_bytes_[id] = from_byte_level(*tokens_[id]).value_or(*tokens_[id]);
    special_[id] = special_contents.count(*tokens_[id]) > 0;
  }
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
  std::string repaired;
  if (!is_valid_utf8(text)) {
    repaired = to_valid_utf8(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 2);
  std::vector<TextPiece> pieces;
  raw_matcher_.split(text, pieces);
  std::string normalized;
  for (const TextPiece& piece : pieces) {
    if (piece.token_id >= 0) {
      ids.push_back(piece.token_id);
    } else if (!normalizer_.empty()) {
      normalized = normalizer_.normalize(piece.text);
      encode_normalized(normalized, ids);
    } else {
      encode_normalized(piece.text, ids);
    }
  }
  return ids;
}

void BpeTokenizer::encode_normalized(std::string_view text, std::vector<int32_t>& ids) const {
  std::vector<TextPiece> pieces;
  normalized_matcher_.split(text, pieces);
  for (const TextPiece& piece : pieces) {
    if (piece.token_id >= 0) {
      ids.push_back(piece.token_id);
    } else {
      pre_tokenizer_.split(piece.text, [&](std::string_view word) { model_.encode_word(word, ids); });
    }
  }
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size_ || !tokens_[id]) {
      throw std::out_of_range("decode: id " + std::to_string(id) + " has no token (vocabulary size " +
                              std::to_string(vocab_size_) + ")");
    }
    if (!(skip_special && special_[id])) bytes += token_bytes_[id];
  }
  return is_valid_utf8(bytes) ? bytes : to_valid_utf8(bytes);
}

std::optional<int32_t> BpeTokenizer::token_to_id(std::string_view token) const {
  const auto it = added_ids_.find(std::string(token));
  if (it != added_ids_.end()) return it->second;
  return model_.token_to_id(token);
}

std::optional<std::string> BpeTokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= vocab_size_) return std::nullopt;
  return tokens_[id];
}

}  // namespace aligntrain::data
