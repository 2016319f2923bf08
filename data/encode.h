// Turns examples into token ids for the model: prompt and response are tokenised separately and concatenated, so
// the response tokens (which carry the loss) are exactly ids[prompt_len:].
//
//   plain-text data     [BOS if the tokenizer has one] + encode(prompt) + encode(response) + [EOS]
//   conversational data the chat template renders prompt messages + response messages; the template's own
//                       markers (BOS text, end-of-turn) are part of the text, so nothing is added
//
// Truncation to max_length (tokens): `right` cuts the end of the response, `left` cuts the start of the prompt
// (then the end of the response if it alone is too long), `drop` skips the example. An example left with no
// response token is dropped. Counts are kept in EncodeStats.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/chat_template.h"
#include "data/example.h"
#include "data/tokenizer.h"

namespace aligntrain::data {

enum class Truncate { kRight, kLeft, kDrop };

struct EncodeOptions {
  int64_t max_length = 0;  // 0: no limit
  Truncate truncate = Truncate::kRight;
  bool append_eos = true;  // plain-text data only
};

struct Encoded {
  std::vector<int32_t> ids;
  int64_t prompt_len = 0;  // ids[prompt_len:] is the response
};

struct EncodeStats {
  int64_t encoded = 0, truncated = 0, dropped = 0;
};

class Encoder {
 public:
  // `chat_template`: a built-in name, "auto" (recognise the model dir's Jinja template) or "none". `model_dir` is
  // where "auto" looks. Plain-text data needs no template: a model without one, or with one that aligntrain does
  // not reproduce, is a UsageError (exit code 2, naming the model folder) only when conversational data is encoded.
  // Throws UsageError for a built-in name the tokenizer cannot serve (`plain` without an EOS token), DataError for
  // an unreadable template file.
  Encoder(const Tokenizer& tokenizer, const std::string& chat_template, const std::string& model_dir,
          EncodeOptions options);

  // nullopt when the example is dropped (truncate: drop, or no response token left).
  std::optional<Encoded> encode(const Text& prompt, const Text& response, EncodeStats* stats = nullptr) const;
  // The prompt alone, ready for generation (conversational prompts end with the assistant turn's opening).
  std::vector<int32_t> encode_prompt(const Text& prompt) const;

 private:
  const ChatTemplate& chat(const char* what) const;

  const Tokenizer& tokenizer_;
  std::optional<ChatTemplate> template_;
  std::string template_error_;  // why there is no template, for conversational data
  EncodeOptions options_;
};

}  // namespace aligntrain::data
