// Declarations of the generated Unicode tables behind the NFC normaliser (defined in tokenizer_nfc_data.cc):
// canonical combining classes, canonical decompositions and primary compositions, each sorted for binary search.
// Hangul syllables are algorithmic and not in the tables.
#pragma once

#include <cstddef>
#include <cstdint>

namespace aligntrain::data::nfc_data {

struct CombiningClassRange {
  char32_t first, last;  // inclusive
  uint8_t combining_class;
};

struct Decomposition {
  char32_t code_point, first, second;  // second == 0: a singleton decomposition
};

struct Composition {
  char32_t first, second, composite;
};

extern const CombiningClassRange kCombiningClasses[];  // sorted by first
extern const std::size_t kNumCombiningClasses;
extern const Decomposition kDecompositions[];  // sorted by code_point
extern const std::size_t kNumDecompositions;
extern const Composition kCompositions[];  // sorted by (first, second)
extern const std::size_t kNumCompositions;

}  // namespace aligntrain::data::nfc_data
