// The GPT-2 bytes <-> characters table (see tokenizer_byte_level.h).
#include "data/tokenizer_byte_level.h"

#include <array>

#include "data/tokenizer_unicode.h"

namespace aligntrain::data {
namespace {

struct ByteLevelTable {
  std::array<std::string, 256> char_of_byte;
  std::array<int16_t, 0x144> byte_of_char;  // -1 where the code point stands for no byte

  ByteLevelTable() {
    byte_of_char.fill(-1);
    char32_t next_unprintable = 0x100;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t cp = printable ? static_cast<char32_t>(b) : next_unprintable++;
      append_utf8(char_of_byte[b], cp);
      byte_of_char[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteLevelTable& table() {
  static const ByteLevelTable instance;
  return instance;
}

}  // namespace

const std::string& byte_level_char(uint8_t byte) { return table().char_of_byte[byte]; }

std::string to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += table().char_of_byte[static_cast<uint8_t>(c)];
  return out;
}

std::optional<std::string> from_byte_level(std::string_view token) {
  if (!is_valid_utf8(token)) return std::nullopt;
  std::string out;
  out.reserve(token.size());
  for (std::size_t pos = 0; pos < token.size();) {
    const char32_t cp = next_code_point(token, pos);
    if (cp >= table().byte_of_char.size() || table().byte_of_char[cp] < 0) return std::nullopt;
    out += static_cast<char>(table().byte_of_char[cp]);
  }
  return out;
}

}  // namespace aligntrain::data
