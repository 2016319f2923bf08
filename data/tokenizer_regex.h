// A regular expression written for Oniguruma (the engine Hugging Face tokenizers runs its Split / ByteLevel
// patterns with), compiled with PCRE2 (UTF, Unicode properties, JIT when available) so that it matches the same:
// ^ and $ are line anchors, \s is Oniguruma's (PCRE2's also takes U+180E), and constructs whose meaning differs
// between the two engines (\w \W \b \B \h \H, POSIX and nested classes, \S inside a class) are refused. Offers
// the two operations the tokenizers need: "Isolated" splitting of text into matches and the gaps between them,
// iterated the way Oniguruma's find_iter does (including its handling of empty matches), and a whole-string
// match. Safe to use from many threads at once. Known gap: PCRE2 10.42 has Unicode 14 tables, the tokenizers
// library's Oniguruma Unicode 16, so characters assigned since Unicode 15 may fall in different classes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace aligntrain::data {

class Regex {
 public:
  enum class Syntax { kOniguruma, kLiteral };

  // Throws std::invalid_argument (with the offset in the pattern) if it does not compile or uses a construct
  // whose meaning differs between Oniguruma and PCRE2.
  explicit Regex(std::string_view pattern, Syntax syntax = Syntax::kOniguruma);

  // Appends to `out` the matches of the pattern in `subject` and the non-empty text between them, in order
  // (Hugging Face's SplitDelimiterBehavior::Isolated); empty pieces are dropped. `subject` must be valid UTF-8
  // (std::invalid_argument otherwise).
  void split_isolated(std::string_view subject, std::vector<std::string_view>& out) const;

  // Whether the whole of `subject` (valid UTF-8) matches.
  bool matches_entirely(std::string_view subject) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct Match {
    std::size_t start, end;
  };
  bool find(std::string_view subject, std::size_t start, uint32_t options, Match& match) const;

  std::string pattern_;
  std::shared_ptr<void> code_;  // pcre2_code_8, freed with pcre2_code_free_8
};

}  // namespace aligntrain::data
