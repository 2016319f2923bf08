// GPT-2's byte-level alphabet: each of the 256 byte values stands for one printable Unicode character (printable
// Latin-1 bytes for themselves, the rest for U+0100..U+0143), so that byte-level BPE vocabularies are plain
// strings. Used to look pre-tokens up in a tokenizer.json vocabulary and to turn tokens back into bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace aligntrain::data {

// The UTF-8 encoding of the character that stands for `byte`.
const std::string& byte_level_char(uint8_t byte);

// Every byte of `bytes` replaced by its character.
std::string to_byte_level(std::string_view bytes);

// The bytes a byte-level string stands for, or nullopt if it holds a character outside the alphabet.
std::optional<std::string> from_byte_level(std::string_view token);

}  // namespace aligntrain::data
