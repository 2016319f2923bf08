// Added tokens (Hugging Face `added_tokens`): strings that are cut out of the text before pre-tokenization and
// become one id each. The matcher finds them leftmost-longest, as the tokenizers library's Aho-Corasick automaton
// does, and applies the per-token options: `single_word` (only between non-word characters), `lstrip`/`rstrip`
// (swallow the whitespace on that side).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace aligntrain::data {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;  // matched on the normalized text (true) or on the raw text (false)
  bool special = false;     // dropped by decode(skip_special=true)
};

// One piece of text after the added tokens are cut out: plain text, or the text of one added token.
struct TextPiece {
  std::string_view text;
  int32_t token_id;  // -1 for plain text
};

class AddedTokenMatcher {
 public:
  // Adds `token`, found in text wherever `pattern` occurs (its content, or for a normalized token its
  // normalized content). Throws std::invalid_argument for an empty or duplicate pattern.
  void add(std::string_view pattern, const AddedToken& token);
  bool empty() const { return entries_.empty(); }

  // Appends the pieces of `text` to `out`, in order; plain pieces are never empty. `text` must be valid UTF-8
  // if any token has single_word, lstrip or rstrip (they look at the characters around a match).
  void split(std::string_view text, std::vector<TextPiece>& out) const;

 private:
  struct Entry {
    int32_t id;
    bool single_word, lstrip, rstrip;
  };
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // byte -> node index, sorted by byte
    int32_t entry = -1;
  };
  struct Match {
    std::size_t start, end;
    int32_t entry;
  };

  int32_t child(int32_t node, uint8_t byte) const;
  bool find_leftmost_longest(std::string_view text, std::size_t from, Match& match) const;
  bool is_single_word(std::string_view text, const Match& match) const;

  std::vector<Node> nodes_{1};  // nodes_[0] is the root
  std::vector<Entry> entries_;
  std::array<bool, 256> first_bytes_{};
};

}  // namespace aligntrain::data
