// Unicode normalisation over the generated tables (see tokenizer_nfc.h). Text that cannot change under the form (the
// usual case: no combining marks, nothing decomposable or composable) is returned after one scan.
#include "data/tokenizer_nfc.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "data/tokenizer_nfc_data.h"
#include "data/tokenizer_nfkc_data.h"
#include "data/tokenizer_unicode.h"

namespace aligntrain::data {
namespace {

using namespace nfc_data;
using nfkc_data::CompatibilityDecomposition;

// Hangul syllables (Unicode 3.12): S = SBase + (L * VCount + V) * TCount + T.
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kSCount = kLCount * kVCount * kTCount;

bool is_hangul_syllable(char32_t cp) { return cp >= kSBase && cp < kSBase + kSCount; }

uint8_t combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  const auto* end = kCombiningClasses + kNumCombiningClasses;
  const auto* it = std::upper_bound(kCombiningClasses, end, cp,
                                    [](char32_t c, const CombiningClassRange& r) { return c < r.first; });
  if (it == kCombiningClasses) return 0;
  --it;
  return cp <= it->last ? it->combining_class : 0;
}

const Decomposition* find_decomposition(char32_t cp) {
  const auto* end = kDecompositions + kNumDecompositions;
  const auto* it = std::lower_bound(kDecompositions, end, cp,
                                    [](const Decomposition& d, char32_t c) { return d.code_point < c; });
  return it != end && it->code_point == cp ? it : nullptr;
}

std::optional<char32_t> compose(char32_t first, char32_t second) {
  if (first >= kLBase && first < kLBase + kLCount && second >= kVBase && second < kVBase + kVCount) {
    return kSBase + ((first - kLBase) * kVCount + (second - kVBase)) * kTCount;
  }
  if (is_hangul_syllable(first) && (first - kSBase) % kTCount == 0 && second > kTBase &&
      second < kTBase + kTCount) {
    return first + (second - kTBase);
  }
  const auto* end = kCompositions + kNumCompositions;
  const auto* it = std::lower_bound(kCompositions, end, std::make_pair(first, second),
                                    [](const Composition& c, const std::pair<char32_t, char32_t>& key) {
                                      return std::make_pair(c.first, c.second) < key;
                                    });
  if (it != end && it->first == first && it->second == second) return it->composite;
  return std::nullopt;
}

const CompatibilityDecomposition* find_compatibility_decomposition(char32_t cp) {
  using nfkc_data::kCompatibilityDecompositions, nfkc_data::kNumCompatibilityDecompositions;
  const auto* end = kCompatibilityDecompositions + kNumCompatibilityDecompositions;
  const auto* it = std::lower_bound(kCompatibilityDecompositions, end, cp,
                                    [](const CompatibilityDecomposition& d, char32_t c) { return d.code_point < c; });
  return it != end && it->code_point == cp ? it : nullptr;
}

bool is_compatibility(UnicodeForm form) { return form == UnicodeForm::kNfkc || form == UnicodeForm::kNfkd; }
bool is_composed(UnicodeForm form) { return form == UnicodeForm::kNfc || form == UnicodeForm::kNfkc; }

bool is_composition_second(char32_t cp) {
  static const std::vector<char32_t> seconds = [] {
    std::vector<char32_t> v;
    for (std::size_t i = 0; i < kNumCompositions; ++i) v.push_back(kCompositions[i].second);
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  }();
  if ((cp >= kVBase && cp < kVBase + kVCount) || (cp > kTBase && cp < kTBase + kTCount)) return true;
  return std::binary_search(seconds.begin(), seconds.end(), cp);
}

// Whether normalising to `form` may change text containing `cp`; false for the vast majority of characters. Nothing
// below U+00A0 changes; the first compatibility decomposition is U+00A0, the first canonical one U+00C0, the first
// combining mark U+0300.
bool may_change(char32_t cp, UnicodeForm form) {
  if (cp < 0xA0) return false;
  if (is_compatibility(form) && find_compatibility_decomposition(cp) != nullptr) return true;
  if (!is_composed(form)) {
    return cp >= 0xC0 && (find_decomposition(cp) != nullptr || is_hangul_syllable(cp) || combining_class(cp) != 0);
  }
  if (cp < 0x300) return false;  // precomposed Latin-1 letters stay as they are under NFC
  return combining_class(cp) != 0 || is_hangul_syllable(cp) || find_decomposition(cp) != nullptr ||
         is_composition_second(cp);
}

// The full canonical (or, if `compatibility`, compatibility) decomposition of `cp`, appended to `out`.
void decompose(char32_t cp, bool compatibility, std::vector<char32_t>& out) {
  if (compatibility) {
    if (const CompatibilityDecomposition* d = find_compatibility_decomposition(cp)) {
      const char32_t* form = nfkc_data::kCompatibilityCodePoints + d->offset;
      out.insert(out.end(), form, form + d->length);  // already fully decomposed
      return;
    }
  }
  if (is_hangul_syllable(cp)) {
    const char32_t s = cp - kSBase;
    out.push_back(kLBase + s / (kVCount * kTCount));
    out.push_back(kVBase + (s % (kVCount * kTCount)) / kTCount);
    if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    return;
  }
  if (const Decomposition* d = find_decomposition(cp)) {
    decompose(d->first, compatibility, out);
    if (d->second != 0) decompose(d->second, compatibility, out);
    return;
  }
  out.push_back(cp);
}

// Stable sort of every run of non-starters by combining class.
void canonical_order(std::vector<char32_t>& cps) {
  for (std::size_t i = 0; i < cps.size();) {
    if (combining_class(cps[i]) == 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < cps.size() && combining_class(cps[j]) != 0) ++j;
    std::stable_sort(cps.begin() + i, cps.begin() + j,
                     [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }
}

// Canonical composition: each character joins the last starter unless a character between them blocks it.
std::vector<char32_t> canonical_compose(const std::vector<char32_t>& cps) {
  std::vector<char32_t> out;
  out.reserve(cps.size());
  std::size_t starter = SIZE_MAX;
  uint8_t last_class = 0;
  for (char32_t cp : cps) {
    const uint8_t cls = combining_class(cp);
    if (starter != SIZE_MAX) {
      const bool adjacent = starter == out.size() - 1;
      const bool blocked = !adjacent && (last_class == 0 || last_class >= cls);
      if (!blocked) {
        if (auto composite = compose(out[starter], cp)) {
          out[starter] = *composite;
          continue;
        }
      }
    }
    if (cls == 0) starter = out.size();
    last_class = cls;
    out.push_back(cp);
  }
  return out;
}

}  // namespace

std::string unicode_normalize(std::string_view text, UnicodeForm form) {
  bool changeable = false;
  for (std::size_t pos = 0; pos < text.size() && !changeable;) {
    if (static_cast<uint8_t>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    changeable = may_change(next_code_point(text, pos), form);
  }
  if (!changeable) return std::string(text);
  std::vector<char32_t> decomposed;
  decomposed.reserve(text.size());
  const bool compatibility = is_compatibility(form);
  for (std::size_t pos = 0; pos < text.size();) decompose(next_code_point(text, pos), compatibility, decomposed);
  canonical_order(decomposed);
  if (is_composed(form)) decomposed = canonical_compose(decomposed);
  std::string out;
  out.reserve(text.size());
  for (char32_t cp : decomposed) append_utf8(out, cp);
  return out;
}

}  // namespace aligntrain::data
