// Leftmost-longest added-token matching over a byte trie (see tokenizer_added_tokens.h). The splitting rules
// follow AddedVocabulary::find_matches in Hugging Face tokenizers.
#include "data/tokenizer_added_tokens.h"

#include <algorithm>
#include <stdexcept>

#include "data/tokenizer_unicode.h"

namespace aligntrain::data {
namespace {

char32_t last_code_point(std::string_view text) {
  std::size_t pos = text.size() - 1;
  while (pos > 0 && (static_cast<uint8_t>(text[pos]) & 0xC0) == 0x80) --pos;
  return next_code_point(text, pos);
}

char32_t first_code_point(std::string_view text) {
  std::size_t pos = 0;
  return next_code_point(text, pos);
}

// Start of the run of whitespace that `text` ends with.
std::size_t trailing_space_start(std::string_view text) {
  std::size_t start = text.size();
  while (start > 0) {
    std::size_t pos = start - 1;
    while (pos > 0 && (static_cast<uint8_t>(text[pos]) & 0xC0) == 0x80) --pos;
    std::size_t end = pos;
    if (!is_white_space(next_code_point(text, end))) break;
    start = pos;
  }
  return start;
}

// Length of the run of whitespace that `text` starts with.
std::size_t leading_space_length(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t next = pos;
    if (!is_white_space(next_code_point(text, next))) break;
    pos = next;
  }
  return pos;
}

}  // namespace

void AddedTokenMatcher::add(std::string_view pattern, const AddedToken& token) {
  if (pattern.empty()) throw std::invalid_argument("added token " + std::to_string(token.id) + " is empty");
  int32_t node = 0;
  for (char c : pattern) {
    const auto byte = static_cast<uint8_t>(c);
    int32_t next = child(node, byte);
    if (next < 0) {
      next = static_cast<int32_t>(nodes_.size());
      auto& children = nodes_[node].children;
      children.insert(std::lower_bound(children.begin(), children.end(), std::make_pair(byte, int32_t{0})),
                      {byte, next});
      nodes_.emplace_back();
    }
    node = next;
  }
  if (nodes_[node].entry >= 0) {
    throw std::invalid_argument("added tokens " + std::to_string(entries_[nodes_[node].entry].id) + " and " +
                                std::to_string(token.id) + " have the same text '" + std::string(pattern) + "'");
  }
  nodes_[node].entry = static_cast<int32_t>(entries_.size());
  entries_.push_back({token.id, token.single_word, token.lstrip, token.rstrip});
  first_bytes_[static_cast<uint8_t>(pattern[0])] = true;
}

int32_t AddedTokenMatcher::child(int32_t node, uint8_t byte) const {
  const auto& children = nodes_[node].children;
  const auto it = std::lower_bound(children.begin(), children.end(), std::make_pair(byte, int32_t{0}));
  return it != children.end() && it->first == byte ? it->second : -1;
}

bool AddedTokenMatcher::find_leftmost_longest(std::string_view text, std::size_t from, Match& match) const {
  for (std::size_t start = from; start < text.size(); ++start) {
    if (!first_bytes_[static_cast<uint8_t>(text[start])]) continue;
    int32_t node = 0;
    bool found = false;
    for (std::size_t pos = start; pos < text.size(); ++pos) {
      node = child(node, static_cast<uint8_t>(text[pos]));
      if (node < 0) break;
      if (nodes_[node].entry >= 0) {
        match = {start, pos + 1, nodes_[node].entry};
        found = true;
      }
    }
    if (found) return true;
  }
  return false;
}

bool AddedTokenMatcher::is_single_word(std::string_view text, const Match& match) const {
  const bool space_before = match.start == 0 || !is_word_character(last_code_point(text.substr(0, match.start)));
  const bool space_after = match.end == text.size() || !is_word_character(first_code_point(text.substr(match.end)));
  return space_before && space_after;
}

void AddedTokenMatcher::split(std::string_view text, std::vector<TextPiece>& out) const {
  std::size_t emitted = 0;  // text before this offset is in `out`
  Match match{};
  for (std::size_t from = 0; find_leftmost_longest(text, from, match); from = match.end) {
    const Entry& entry = entries_[match.entry];
    if (entry.single_word && !is_single_word(text, match)) continue;
    std::size_t start = match.start, end = match.end;
    if (entry.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), emitted);
    if (entry.rstrip) end += leading_space_length(text.substr(end));
    if (emitted < start) out.push_back({text.substr(emitted, start - emitted), -1});
    out.push_back({text.substr(start, end - start), entry.id});
    emitted = end;
  }
  if (emitted < text.size()) out.push_back({text.substr(emitted), -1});
}

}  // namespace aligntrain::data
