// BPE vocabulary, merges and merge loop (see tokenizer_bpe_model.h). The loop mirrors Word::merge_all in Hugging
// Face tokenizers: a min-queue of (rank, position) over a linked list of symbols, with stale entries skipped.
#include "data/tokenizer_bpe_model.h"

#include <array>
#include <mutex>
#include <queue>

#include "data/tokenizer_byte_level.h"
#include "data/tokenizer_unicode.h"

namespace aligntrain::data {
namespace {

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

std::pair<std::string, std::string> merge_pair(const JsonView& merge) {
  if (merge.is_string()) {  // "a b"
    const std::string text = merge.string();
    const std::size_t space = text.find(' ');
    if (space == std::string::npos) merge.fail("expected \"left right\" with one space, got \"" + text + "\"");
    return {text.substr(0, space), text.substr(space + 1)};
  }
  if (!merge.is_array() || merge.array().size() != 2) merge.fail("expected \"left right\" or [\"left\", \"right\"]");
  return {merge[0].string(), merge[1].string()};
}

bool is_empty_or_null(const std::optional<JsonView>& value) { return !value || value->string().empty(); }

}  // namespace

BpeModel::BpeModel(const JsonView& model, Alphabet alphabet) : alphabet_(alphabet) {
  if (model["type"].string() != "BPE") model["type"].fail("unsupported model type (only \"BPE\" is supported)");
  if (model.get("dropout")) model["dropout"].fail("BPE dropout is not supported; set it to null");
  if (!is_empty_or_null(model.get("continuing_subword_prefix"))) {
    model["continuing_subword_prefix"].fail("not supported by byte-level BPE; expected null or \"\"");
  }
  if (!is_empty_or_null(model.get("end_of_word_suffix"))) {
    model["end_of_word_suffix"].fail("not supported by byte-level BPE; expected null or \"\"");
  }
  byte_fallback_ = model.boolean_or("byte_fallback", false);
  if (byte_fallback_ && alphabet_ == Alphabet::kByteLevel) {
    model["byte_fallback"].fail("byte_fallback is not supported with the ByteLevel decoder (byte-level BPE)");
  }
  ignore_merges_ = model.boolean_or("ignore_merges", false);
  fuse_unk_ = model.boolean_or("fuse_unk", false);
  read_vocab(model["vocab"]);
  read_merges(model["merges"]);
  read_unknown_token(model);
  static const char* const kHex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const auto id = token_to_id(byte_level_char(static_cast<uint8_t>(b)));
    byte_ids_[b] = id ? *id : -1;
    const auto fallback = token_to_id(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">");
    fallback_ids_[b] = fallback ? *fallback : -1;
  }
}

void BpeModel::read_vocab(const JsonView& vocab) {
  for (const auto& item : vocab.object().items()) {
    const JsonView entry(item.value(), vocab.file(), vocab.path() + "." + item.key());
    const int64_t id = entry.integer();
    if (id < 0 || id > kMaxTokenId) {
      entry.fail("id " + std::to_string(id) + " out of range (0.." + std::to_string(kMaxTokenId) + ")");
    }
    vocab_[item.key()] = static_cast<int32_t>(id);
    if (static_cast<std::size_t>(id) >= tokens_.size()) {
      tokens_.resize(id + 1);
      has_token_.resize(id + 1, false);
    }
    if (has_token_[id]) entry.fail("id " + std::to_string(id) + " is also used by '" + tokens_[id] + "'");
    tokens_[id] = item.key();
    has_token_[id] = true;
  }
}

void BpeModel::read_merges(const JsonView& merges) {
  const std::size_t count = merges.array().size();
  merges_.reserve(count);
  for (std::size_t rank = 0; rank < count; ++rank) {
    const JsonView merge = merges[rank];
    const auto [left, right] = merge_pair(merge);
    const auto left_id = token_to_id(left), right_id = token_to_id(right), merged_id = token_to_id(left + right);
    if (!left_id || !right_id || !merged_id) {
      merge.fail("'" + (!left_id ? left : !right_id ? right : left + right) + "' is not in the vocabulary");
    }
    merges_[pair_key(*left_id, *right_id)] = {static_cast<uint32_t>(rank), *merged_id};  // a later duplicate wins
  }
}

void BpeModel::read_unknown_token(const JsonView& model) {
  const auto unk = model.get("unk_token");
  if (!unk) return;
  unk_id_ = token_to_id(unk->string());
  if (!unk_id_) unk->fail("'" + unk->string() + "' is not in the vocabulary");
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || id >= id_limit() || !has_token_[id]) return nullptr;
  return &tokens_[id];
}

const BpeModel::MergeResult* BpeModel::find_merge(int32_t left, int32_t right) const {
  const auto it = merges_.find(pair_key(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const auto id = token_to_id(alphabet_ == Alphabet::kByteLevel ? to_byte_level(word) : std::string(word))) {
      ids.push_back(*id);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::shared_lock lock(cache_mutex_);
    const auto it = cache_.find(std::string(word));
    if (it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> merged = merge(word);
  ids.insert(ids.end(), merged.begin(), merged.end());
  if (cacheable) {
    std::unique_lock lock(cache_mutex_);
    if (cache_.size() < kCacheCapacity) cache_.emplace(std::string(word), std::move(merged));
  }
}

std::vector<int32_t> BpeModel::merge(std::string_view word) const {
  return merge_symbols(alphabet_ == Alphabet::kByteLevel ? byte_level_symbols(word) : utf8_symbols(word));
}

std::vector<int32_t> BpeModel::byte_level_symbols(std::string_view word) const {
  // One symbol per byte; a byte missing from the vocabulary becomes the unknown token (runs fused if fuse_unk)
  // or, with no unknown token, is dropped -- both as in the tokenizers library.
  std::vector<int32_t> ids;
  ids.reserve(word.size());
  for (char c : word) {
    int32_t id = byte_ids_[static_cast<uint8_t>(c)];
    if (id < 0) {
      if (!unk_id_ || (fuse_unk_ && !ids.empty() && ids.back() == *unk_id_)) continue;
      id = *unk_id_;
    }
    ids.push_back(id);
  }
  return ids;
}

std::vector<int32_t> BpeModel::utf8_symbols(std::string_view word) const {
  // One symbol per character, as BPE::merge_word in the tokenizers library: a character missing from the
  // vocabulary becomes its <0xNN> tokens (byte_fallback, when all of them exist), else it opens or extends (with
  // fuse_unk) a pending unknown token, which is emitted before the next known character or at the end (so byte
  // tokens that follow an unknown character come before it, as in the library); with no unknown token it is
  // dropped.
  std::vector<int32_t> ids;
  ids.reserve(word.size());
  bool unk_pending = false;
  for (std::size_t pos = 0; pos < word.size();) {
    const std::size_t start = pos;
    next_code_point(word, pos);
    const std::string_view character = word.substr(start, pos - start);
    if (const auto id = token_to_id(character)) {
      if (unk_pending) ids.push_back(*unk_id_);
      unk_pending = false;
      ids.push_back(*id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : character) all = all && fallback_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all) {
        for (char c : character) ids.push_back(fallback_ids_[static_cast<uint8_t>(c)]);
        continue;
      }
    }
    if (!unk_id_) continue;
    if (unk_pending && !fuse_unk_) ids.push_back(*unk_id_);
    unk_pending = true;
  }
  if (unk_pending) ids.push_back(*unk_id_);
  return ids;
}

std::vector<int32_t> BpeModel::merge_symbols(const std::vector<int32_t>& initial) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // -1 at the ends
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(initial.size());
  for (int32_t id : initial) {
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, index + 1, true});
  }
  if (symbols.empty()) return {};
  symbols.back().next = -1;

  struct Candidate {
    uint32_t rank;
    int32_t pos;
    int32_t id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  const auto push_pair = [&](int32_t pos) {
    const int32_t next = symbols[pos].next;
    if (next < 0) return;
    if (const MergeResult* m = find_merge(symbols[pos].id, symbols[next].id)) queue.push({m->rank, pos, m->id});
  };
  for (int32_t pos = 0; pos + 1 < static_cast<int32_t>(symbols.size()); ++pos) push_pair(pos);

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    const MergeResult* current = find_merge(left.id, right.id);
    if (current == nullptr || current->id != top.id) continue;  // stale: a neighbour merged since
    left.id = top.id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }

  std::vector<int32_t> ids;
  for (int32_t pos = 0; pos >= 0; pos = symbols[pos].next) ids.push_back(symbols[pos].id);
  return ids;
}

}  // namespace aligntrain::data
