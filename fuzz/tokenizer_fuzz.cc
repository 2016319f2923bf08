// libFuzzer target for tokenizer.json loading and encoding (data/tokenizer_bpe.h, data/tokenizer_spm_bpe.h): the
// input is a tokenizer.json, optionally followed by a NUL byte and a text to encode (without one, a fixed
// multilingual text with special-token strings is encoded). The JSON is loaded as load_tokenizer() loads it
// (byte-level or SentencePiece-style); the only exception allowed out of loading is std::runtime_error (the
// field-naming error). A tokenizer that loads must encode the text without throwing, give ids inside its
// vocabulary, decode them (with and without special tokens) to valid UTF-8, and add its special tokens.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "data/tokenizer.h"
#include "data/tokenizer_bpe.h"
#include "data/tokenizer_spm_bpe.h"
#include "data/tokenizer_unicode.h"

namespace {

using aligntrain::data::BpeTokenizer;
using aligntrain::data::SpmBpeTokenizer;
using aligntrain::data::Tokenizer;

void require(bool condition) {
  if (!condition) __builtin_trap();
}

constexpr const char* kDefaultText =
    "Hello  world\n\n  <s>[INST] naïve café 日本語 😀👨‍👩‍👧 \t\xC3\x28 <0x41> ▁▁x </s>";

std::unique_ptr<Tokenizer> load(const nlohmann::json& spec) {
  try {
    if (aligntrain::data::is_byte_level_tokenizer(spec)) return std::make_unique<BpeTokenizer>(spec, "fuzz.json");
    return std::make_unique<SpmBpeTokenizer>(spec, "fuzz.json");
  } catch (const std::runtime_error&) {
    return nullptr;  // a precise error naming the field: fine
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const nlohmann::json spec = nlohmann::json::parse(input.substr(0, nul), nullptr, false);
  if (spec.is_discarded()) return 0;
  const std::string text = nul == std::string::npos ? kDefaultText : input.substr(nul + 1);
  const auto tokenizer = load(spec);
  if (!tokenizer) return 0;
  const std::vector<int32_t> ids = tokenizer->encode(text);
  for (int32_t id : ids) require(id >= 0 && id < tokenizer->vocab_size());
  for (bool skip : {false, true}) {
    try {
      require(aligntrain::data::is_valid_utf8(tokenizer->decode(ids, skip)));
    } catch (const std::out_of_range&) {
      // an id of a hole in the vocabulary: only possible when the text produced one, which it must not
      require(false);
    }
  }
  const std::vector<int32_t> with_specials = tokenizer->add_special_tokens(ids, &ids);
  for (int32_t id : with_specials) require(id >= 0 && id < tokenizer->vocab_size());
  return 0;
}
