// Unicode Normalization Form C, as the Hugging Face `NFC` normalizer applies it (Qwen2 tokenizers use it):
// canonical decomposition, canonical ordering of combining marks, canonical composition. The tables agree with
// the tokenizers library's (see tokenizer_nfc_data.cc), including where its Unicode version is older than ours.
#pragma once

#include <string>
#include <string_view>

namespace aligntrain::data {

// The NFC form of valid UTF-8 `text`.
std::string nfc(std::string_view text);

}  // namespace aligntrain::data
