// The Unicode normalization forms as the Hugging Face `NFC`, `NFD`, `NFKC` and `NFKD` normalizers apply them (Qwen2
// tokenizers use NFC): canonical (NFC, NFD) or compatibility (NFKC, NFKD) decomposition, canonical ordering of
// combining marks, then canonical composition for the composed forms (NFC, NFKC). The tables agree with the
// tokenizers library's (see tokenizer_nfc_data.cc and tokenizer_nfkc_data.cc), including where its Unicode version
// is older than ours: a character the library does not know is left as it is, as the library leaves it.
#pragma once

#include <string>
#include <string_view>

namespace aligntrain::data {

enum class UnicodeForm { kNfc, kNfd, kNfkc, kNfkd };

// The normalization form `form` of valid UTF-8 `text`.
std::string unicode_normalize(std::string_view text, UnicodeForm form);

// The NFC form of valid UTF-8 `text`.
inline std::string nfc(std::string_view text) { return unicode_normalize(text, UnicodeForm::kNfc); }

}  // namespace aligntrain::data
