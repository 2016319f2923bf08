// Turns examples into token ids for the model: prompt and response are tokenised separately and concatenated, so
// the response tokens (which carry the loss) are exactly ids[prompt_len:].
//
//   plain-text data     [BOS if the tokenizer has one] + encode(prompt) + encode(response) + [EOS]
//   conversational data the chat template renders prompt messages + response messages; the template's own
//                       markers (BOS text, end-of-turn) are part of the text, so nothing is added. The loss is on
//                       the last assistant turn, or with assistant_only_loss on every assistant turn
//                       (ChatTemplate::render_assistant_turns): the text is then tokenised piece by piece at the
//                       turns' boundaries and Encoded::loss_mask marks the assistant tokens.
// Conversations may have tool calls and tool results (data/chat_message_json.h); they are context like user turns,
// and an assistant turn's tool calls carry loss like its text.
// Template variables: the stage's chat_template_kwargs, then the example's own (TRL's `chat_template_kwargs` and
// `tools` fields of a data line; Example::template_vars), which win.
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
  bool assistant_only_loss = false;  // conversations: loss on every assistant turn, not only the last
  std::string chat_template_kwargs;  // JSON object of extra template variables ("": none)
  bool keep_text = false;            // fill Encoded::text (aligntrain tokenize)
};

struct Encoded {
  std::vector<int32_t> ids;
  int64_t prompt_len = 0;  // ids[prompt_len:] is the response (with loss_mask: the tokens before the first loss one)
  std::vector<uint8_t> loss_mask;  // per id, 1 where the token carries loss (assistant_only_loss); empty: the response
  std::string text;                // the rendered text before truncation (keep_text)
};

// 1 for each id of `e` that carries loss (the response, or loss_mask), 0 for the others; a training stage also
// leaves out a document's first token, which nothing predicts.
std::vector<uint8_t> loss_mask_of(const Encoded& e);

struct EncodeStats {
  int64_t encoded = 0, truncated = 0, dropped = 0;
};

class Encoder {
 public:
  // `chat_template`: a built-in name, "auto" (recognise the model dir's Jinja template), a .jinja file rendered by
  // the Jinja engine, or "none". `model_dir` is where "auto" looks. Plain-text data needs no template: a model without one, or with one that aligntrain does
  // not reproduce, is a UsageError (exit code 2, naming the model folder) only when conversational data is encoded.
  // Throws UsageError for a built-in name the tokenizer cannot serve (`plain` without an EOS token), DataError for
  // an unreadable template file, UsageError for one that does not compile or malformed chat_template_kwargs.
  Encoder(const Tokenizer& tokenizer, const std::string& chat_template, const std::string& model_dir,
          EncodeOptions options);

  // nullopt when the example is dropped (truncate: drop, or no response token left). `vars`: the example's own
  // template variables (Example::template_vars).
  std::optional<Encoded> encode(const Text& prompt, const Text& response, EncodeStats* stats = nullptr,
                                const std::string& vars = "") const;
  // encode() of one of `ex`'s responses, with its template variables; an error names PATH:LINE of the example.
  std::optional<Encoded> encode_example(const Example& ex, const Text& response, const std::string& path,
                                        EncodeStats* stats = nullptr) const;
  // The prompt alone, ready for generation (conversational prompts end with the assistant turn's opening); `vars`:
  // the example's own template variables (Example::template_vars).
  std::vector<int32_t> encode_prompt(const Text& prompt, const std::string& vars = "") const;
  // The whole conversation as text, without a generation prompt, with the options' chat_template_kwargs and `vars`
  // (as TRL's apply_chat_template({"messages": ...}) renders the text a reward model scores).
  std::string render_conversation(const std::vector<Message>& messages, const std::string& vars = "") const;

 private:
  // The template for an example: the model's own Jinja template when the model's template was recognised as a
  // built-in one (which ignores variables and renders no tools) and `vars` has variables or `messages` has tool
  // calls or tool results; else the chosen one.
  const ChatTemplate& chat(const char* what, const TemplateVars* vars, const std::vector<ChatMessage>& messages) const;
  TemplateVars variables(const std::string& vars) const;
  std::optional<Encoded> finish(std::vector<int32_t> p, std::vector<int32_t> r, EncodeStats& st) const;
  std::optional<Encoded> finish_masked(std::vector<int32_t> ids, std::vector<uint8_t> mask, EncodeStats& st) const;

  const Tokenizer& tokenizer_;
  std::optional<ChatTemplate> template_;
  std::optional<ChatTemplate> own_template_;  // auto, recognised as a built-in: the model's Jinja template itself
  std::string template_error_;  // why there is no template, for conversational data
  EncodeOptions options_;
  TemplateVars kwargs_;  // options_.chat_template_kwargs, parsed
};

}  // namespace aligntrain::data
