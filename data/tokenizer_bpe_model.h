// The BPE model of a Hugging Face tokenizer.json (`model.type == "BPE"`): the vocabulary, the ranked merges, and
// the merge loop that turns one pre-token into ids exactly as the tokenizers library does (the lowest-ranked
// adjacent pair merges first, the leftmost among equals). `ignore_merges` (Llama-3) emits a pre-token found whole
// in the vocabulary directly. Two alphabets: byte-level (GPT-2's 256 characters; a pre-token is given as raw bytes
// and mapped here) and SentencePiece-style (Llama 2, Mistral, Gemma: the vocabulary holds plain UTF-8 text, a
// pre-token starts as one symbol per character, and a character missing from the vocabulary becomes its
// `<0xNN>` byte tokens with `byte_fallback`, else the unknown token, runs of them fused with `fuse_unk`).
// Results are cached per pre-token; all methods are thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "data/tokenizer_json.h"

namespace aligntrain::data {

// The largest token id a tokenizer.json may use (the largest real vocabularies have ~260k tokens): a larger one is
// refused with an error rather than sizing the id tables after it.
constexpr int64_t kMaxTokenId = (int64_t{1} << 22) - 1;

class BpeModel {
 public:
  enum class Alphabet { kByteLevel, kUtf8 };

  // Reads `model` of a tokenizer.json; throws std::runtime_error naming the file and field if it is malformed
  // or uses an option this implementation does not have (dropout, subword prefixes/suffixes, and byte_fallback
  // with the byte-level alphabet).
  BpeModel(const JsonView& model, Alphabet alphabet);

  // Appends the ids of one pre-token: raw bytes for kByteLevel (the byte-level mapping happens here), valid
  // UTF-8 in the vocabulary's own alphabet for kUtf8.
  void encode_word(std::string_view word, std::vector<int32_t>& ids) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The vocabulary entry with this id, or nullptr.
  const std::string* id_to_token(int32_t id) const;
  // One more than the largest id in the vocabulary.
  int32_t id_limit() const { return static_cast<int32_t>(tokens_.size()); }
  // The number of vocabulary entries (less than id_limit() when some ids have no token).
  int32_t vocab_entries() const { return static_cast<int32_t>(vocab_.size()); }

 private:
  struct MergeResult {
    uint32_t rank;
    int32_t id;
  };

  void read_vocab(const JsonView& vocab);
  void read_merges(const JsonView& merges);
  void read_unknown_token(const JsonView& model);
  std::vector<int32_t> merge(std::string_view word) const;
  std::vector<int32_t> byte_level_symbols(std::string_view word) const;
  std::vector<int32_t> utf8_symbols(std::string_view word) const;
  std::vector<int32_t> merge_symbols(const std::vector<int32_t>& initial) const;
  const MergeResult* find_merge(int32_t left, int32_t right) const;

  std::unordered_map<std::string, int32_t> vocab_;  // byte-level token string -> id
  std::vector<std::string> tokens_;                 // id -> token string; "" where no token has the id
  std::vector<bool> has_token_;
  std::unordered_map<uint64_t, MergeResult> merges_;  // (left id << 32 | right id) -> rank and merged id
  std::array<int32_t, 256> byte_ids_{};               // id of each byte's character, -1 if absent
  std::array<int32_t, 256> fallback_ids_{};           // id of each byte's <0xNN> token, -1 if absent
  Alphabet alphabet_;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;

  static constexpr std::size_t kCacheCapacity = 1 << 17;
  static constexpr std::size_t kMaxCachedWordBytes = 256;
  mutable std::shared_mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace aligntrain::data
