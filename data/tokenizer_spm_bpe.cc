// tokenizer.json loading and the encode/decode pipeline of SentencePiece-style BPE (see tokenizer_spm_bpe.h).
#include "data/tokenizer_spm_bpe.h"

#include <map>
#include <stdexcept>
#include <unordered_set>

#include "data/tokenizer_unicode.h"

namespace aligntrain::data {
namespace {

bool has_type(const nlohmann::json& value, const char* type) {
  return value.is_object() && value.contains("type") && value["type"] == type;
}

template <typename T>
T optional_part(const JsonView& root, const char* key) {
  const auto part = root.get(key);
  return part ? T(*part) : T();
}

}  // namespace

bool is_byte_level_tokenizer(const nlohmann::json& spec) {
  if (!spec.is_object()) return true;  // the byte-level loader reports what is wrong
  const auto field = [&](const char* key) { return spec.contains(key) ? spec[key] : nlohmann::json(); };
  const nlohmann::json decoder = field("decoder"), pre = field("pre_tokenizer");
  if (has_type(decoder, "ByteLevel") || has_type(pre, "ByteLevel")) return true;
  if (has_type(pre, "Sequence") && pre.contains("pretokenizers") && pre["pretokenizers"].is_array()) {
    for (const auto& step : pre["pretokenizers"]) {
      if (has_type(step, "ByteLevel")) return true;
    }
  }
  return false;
}

SpmBpeTokenizer::SpmBpeTokenizer(const nlohmann::json& spec, const std::string& source)
    : SpmBpeTokenizer(JsonView(spec, source)) {}

SpmBpeTokenizer::SpmBpeTokenizer(const JsonView& root)
    : model_(root["model"], BpeModel::Alphabet::kUtf8),
      normalizer_(optional_part<Normalizer>(root, "normalizer")),
      pre_tokenizer_(optional_part<MetaspacePreTokenizer>(root, "pre_tokenizer")),
      decoder_(optional_part<Decoder>(root, "decoder")) {
  read_added_tokens(root["added_tokens"]);
  build_id_tables();
  if (const auto post = root.get("post_processor")) post_processor_ = PostProcessor(*post, vocab_size_);
}

void SpmBpeTokenizer::read_added_tokens(const JsonView& added_tokens) {
  // As the tokenizers library loads them: the "id" fields are checked but not used. A token whose content is in
  // the model's vocabulary (or was added before) takes that id; any other takes the next free one, counting from
  // the number of vocabulary entries. A later token with the same content replaces the earlier one; tokens with
  // empty content are skipped.
  int32_t next_id = model_.vocab_entries();
  std::map<int32_t, std::pair<AddedToken, std::size_t>> by_id;  // id -> token and its index in added_tokens
  for (std::size_t i = 0; i < added_tokens.array().size(); ++i) {
    const JsonView item = added_tokens[i];
    AddedToken token;
    item["id"].integer();
    token.content = item["content"].string();
    token.single_word = item["single_word"].boolean();
    token.lstrip = item["lstrip"].boolean();
    token.rstrip = item["rstrip"].boolean();
    token.normalized = item["normalized"].boolean();
    token.special = item["special"].boolean();
    if (token.content.empty()) continue;
    const auto existing = token_to_id(token.content);
    if (!existing && next_id > kMaxTokenId) item.fail("too many added tokens");
    token.id = existing ? *existing : next_id++;
    added_ids_[token.content] = token.id;
    by_id[token.id] = {std::move(token), i};
  }
  for (auto& [id, entry] : by_id) {
    AddedToken& token = entry.first;
    const std::string pattern = token.normalized ? normalizer_.normalize(token.content) : token.content;
    if (!pattern.empty()) {  // a token normalized to nothing is never matched
      try {
        (token.normalized ? normalized_matcher_ : raw_matcher_).add(pattern, token);
      } catch (const std::invalid_argument& e) {
        added_tokens[entry.second].fail(e.what());
      }
    }
    added_tokens_.push_back(std::move(token));
  }
}

void SpmBpeTokenizer::build_id_tables() {
  vocab_size_ = model_.id_limit();
  for (const AddedToken& token : added_tokens_) vocab_size_ = std::max(vocab_size_, token.id + 1);
  tokens_.assign(vocab_size_, std::nullopt);
  for (int32_t id = 0; id < model_.id_limit(); ++id) {
    if (const std::string* token = model_.id_to_token(id)) tokens_[id] = *token;
  }
  std::unordered_set<std::string> special_contents;
  for (const AddedToken& token : added_tokens_) {
    tokens_[token.id] = token.normalized ? normalizer_.normalize(token.content) : token.content;
    if (token.special) special_contents.insert(token.content);
  }
  special_.assign(vocab_size_, false);
  for (int32_t id = 0; id < vocab_size_; ++id) special_[id] = tokens_[id] && special_contents.count(*tokens_[id]) > 0;
}

std::vector<int32_t> SpmBpeTokenizer::encode(std::string_view text) const {
  std::string repaired;
  if (!is_valid_utf8(text)) {
    repaired = to_valid_utf8(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 2);
  const auto encode_word = [&](std::string_view word) { model_.encode_word(word, ids); };
  std::vector<TextPiece> pieces, parts;
  raw_matcher_.split(text, pieces);
  std::string normalized;
  for (const TextPiece& piece : pieces) {
    if (piece.token_id >= 0) {
      ids.push_back(piece.token_id);
      continue;
    }
    // Metaspace's prepend_scheme "first" prepends only to the text at offset 0 of the input.
    const bool starts_input = piece.text.data() == text.data();
    normalized = normalizer_.empty() ? std::string(piece.text) : normalizer_.normalize(piece.text);
    parts.clear();
    normalized_matcher_.split(normalized, parts);
    for (const TextPiece& part : parts) {
      if (part.token_id >= 0) {
        ids.push_back(part.token_id);
      } else {
        pre_tokenizer_.split(part.text, starts_input && part.text.data() == normalized.data(), encode_word);
      }
    }
  }
  return ids;
}

std::string SpmBpeTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size_ || !tokens_[id]) {
      throw std::out_of_range("decode: id " + std::to_string(id) + " has no token (vocabulary size " +
                              std::to_string(vocab_size_) + ")");
    }
    if (!(skip_special && special_[id])) tokens.push_back(*tokens_[id]);
  }
  std::string text = decoder_.decode(std::move(tokens));
  return is_valid_utf8(text) ? text : to_valid_utf8(text);
}

std::optional<int32_t> SpmBpeTokenizer::token_to_id(std::string_view token) const {
  const auto it = added_ids_.find(std::string(token));
  if (it != added_ids_.end()) return it->second;
  return model_.token_to_id(token);
}

std::optional<std::string> SpmBpeTokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= vocab_size_) return std::nullopt;
  return tokens_[id];
}

std::vector<int32_t> SpmBpeTokenizer::add_special_tokens(const std::vector<int32_t>& a,
                                                         const std::vector<int32_t>* b) const {
  return post_processor_.apply(a, b);
}

}  // namespace aligntrain::data
