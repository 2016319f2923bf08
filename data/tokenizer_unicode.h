// UTF-8 helpers shared by the tokenizers: decoding and encoding code points, making arbitrary bytes valid UTF-8
// the way Hugging Face sees them (every maximal ill-formed subsequence becomes U+FFFD, as Python's
// bytes.decode("utf-8", "replace") and Rust's String::from_utf8_lossy do), and the two character classes the
// added-token matcher needs (Unicode White_Space, and the regex crate's Unicode \w).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace aligntrain::data {

// One step through UTF-8 text: `length` bytes starting at the position, either a whole well-formed sequence
// (`valid`) or the maximal ill-formed subpart there (at least one byte).
struct Utf8Step {
  std::size_t length;
  bool valid;
};

Utf8Step utf8_step(std::string_view text, std::size_t pos);

bool is_valid_utf8(std::string_view text);

// `text` with each maximal ill-formed subsequence replaced by U+FFFD.
std::string to_valid_utf8(std::string_view text);

// Decodes the code point at `pos` of valid UTF-8 text and moves `pos` past it.
char32_t next_code_point(std::string_view text, std::size_t& pos);

void append_utf8(std::string& out, char32_t code_point);

// Unicode White_Space (Rust's char::is_whitespace, the regex crate's \s).
bool is_white_space(char32_t code_point);

// The regex crate's Unicode \w: Alphabetic, Mark, Decimal_Number, Connector_Punctuation, Join_Control.
bool is_word_character(char32_t code_point);

}  // namespace aligntrain::data
