// Declarations of the generated table behind the NFKC / NFKD normalisers (defined in tokenizer_nfkc_data.cc): the
// full compatibility decomposition of every character whose NFKD form differs from its NFD form, as the Hugging Face
// `tokenizers` library decomposes it, sorted by code point for binary search. The canonical tables (combining
// classes, canonical decompositions, compositions) are NFC's (tokenizer_nfc_data.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace aligntrain::data::nfkc_data {

struct CompatibilityDecomposition {
  char32_t code_point;
  uint16_t offset;  // into kCompatibilityCodePoints
  uint8_t length;   // code points of the NFKD form, at least 1
};

extern const CompatibilityDecomposition kCompatibilityDecompositions[];  // sorted by code_point
extern const std::size_t kNumCompatibilityDecompositions;
extern const char32_t kCompatibilityCodePoints[];  // the NFKD forms, one after another
extern const std::size_t kNumCompatibilityCodePoints;

}  // namespace aligntrain::data::nfkc_data
