// Chat templates: the built-in `chatml` (Qwen), `llama3` and `plain` (for the byte-tokenizer tiny models) formats
// that turn a conversation into the text a model is trained on, split into the prompt (masked from the loss) and
// the completion; and recognition of a model's Hugging Face Jinja template as one of them. A template that
// cannot be recognised, or that does things the built-in one would not reproduce, is an error telling the user
// to name a template in the recipe -- never a silently different prompt.
//
// The formats (CONTENT is the message text, ROLE its role):
//   chatml  <|im_start|>ROLE\nCONTENT<|im_end|>\n ...            generation prompt: <|im_start|>assistant\n
//   llama3  <|begin_of_text|> then <|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|> ...
//           (CONTENT with surrounding whitespace trimmed)       generation prompt: <|start_header_id|>assistant<|end_header_id|>\n\n
//   plain   BOS then "System: CONTENT\n", "User: CONTENT\n", "Assistant: CONTENT" EOS ...
//                                                                generation prompt: "Assistant: "
// Rendered text contains the special tokens as text; tokenize it with Tokenizer::encode (which adds nothing).
//
// A model's own Jinja template that is none of these is rendered by aligntrain's Jinja engine (data/jinja.h),
// byte for byte as transformers' apply_chat_template renders it (ChatTemplate::from_jinja).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace aligntrain::data {

class JinjaTemplate;
namespace jinja {
struct RenderResult;
}

struct ChatMessage {
  std::string role;     // system | user | assistant | tool
  std::string content;  // "" for an assistant message with tool calls and no content
  // The message object as the data has it, passed to a Jinja template as it is (tool_calls, a tool result's name and
  // tool_call_id, ...); null: the template receives {"role": role, "content": content}.
  nlohmann::ordered_json json;
};

// Whether `message` is a tool result or makes tool calls (only Jinja templates render those).
bool is_tool_turn(const ChatMessage& message);

// A conversation ready for training: the model reads `prompt` and learns `completion` (the final assistant
// message and the end of its turn); prompt + completion is the whole rendered conversation.
struct PromptCompletion {
  std::string prompt;
  std::string completion;
};

// A conversation rendered with the byte ranges [begin, end) of its assistant turns that carry loss.
struct RenderedTurns {
  std::string text;
  std::vector<std::pair<size_t, size_t>> assistant;
};

// Extra template variables (a JSON object): chat_template_kwargs and tools. A null pointer: none.
using TemplateVars = nlohmann::ordered_json;

// "chatml", "llama3", "plain".
const std::vector<std::string>& chat_template_names();

// Whether `role` is one the templates render: system, user, assistant or tool (tool results; Jinja templates only).
// (The data reader rejects any other role on the line that has it, so an unknown role is reported as FILE:LINE
// before anything is rendered.)
bool is_chat_role(std::string_view role);

class ChatTemplate {
 public:
  // `bos_token` / `eos_token`: the tokenizer's BOS and EOS text ("" if it has none); only `plain` uses them, and it
  // needs an EOS. `default_system`: a system message put first when a conversation has none ("" for none).
  // Throws std::invalid_argument for an unknown name (listing the known ones) or `plain` without an EOS.
  ChatTemplate(std::string_view name, std::string bos_token, std::string eos_token, std::string default_system = "");

  // A Hugging Face Jinja template rendered by the Jinja engine with the variables transformers passes: messages
  // ({role, content}, or the message's own JSON: ChatMessage::json), add_generation_prompt, tools and documents (none), and bos_token / eos_token when the
  // tokenizer has them. `source` names where the template is from (say, "the chat template of the model in DIR");
  // errors start with it. Throws UsageError (exit code 2), with the line and column, for a template that does not
  // compile.
  static ChatTemplate from_jinja(std::string_view jinja, std::string bos_token, std::string eos_token,
                                 std::string source);

  const std::string& name() const { return name_; }

  // The conversation as the model sees it, followed by the opening of an assistant turn if
  // `add_generation_prompt`. Throws std::invalid_argument for an empty conversation, DataError (exit code 3) for a
  // role other than system, user or assistant (it came from someone's data) or, with a built-in template, a tool
  // result or tool call (built-in templates render neither). A Jinja template: DataError when it
  // rejects the conversation (raise_exception, e.g. roles that do not alternate), UsageError for a rendering
  // error of the template itself.
  // `vars`: extra variables passed to a Jinja template after the standard ones (transformers' **kwargs), e.g.
  // enable_thinking or tools; a built-in template renders no tools (DataError when `vars` has a non-null one) and
  // ignores the rest.
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                     const TemplateVars* vars = nullptr) const;

  // Splits a conversation whose last message is the assistant's (with at least one message before it) into
  // prompt = render(all but the last, true) and the completion. Throws std::invalid_argument otherwise.
  // A Jinja template: completion = render(all, false) after that prompt, as TRL splits conversations; UsageError
  // when the full rendering does not start with the prompt's (the template renders earlier turns differently
  // once a later one exists, so no completion can be split off).
  PromptCompletion render_for_training(const std::vector<ChatMessage>& messages,
                                       const TemplateVars* vars = nullptr) const;

  // The whole conversation (no generation prompt) with the byte ranges of every assistant turn (TRL's
  // assistant_only_loss; an assistant turn's tool calls are part of it, tool results are not): a Jinja template's `{% generation %}` blocks when it has them, as transformers'
  // return_assistant_tokens_mask takes them; otherwise by rendering prefixes: assistant message i spans from the end
  // of render(messages[:i], add_generation_prompt) to the end of render(messages[:i+1]). UsageError when a prefix's
  // rendering is not a prefix of the whole rendering (the template renders earlier turns differently once later
  // ones exist).
  RenderedTurns render_assistant_turns(const std::vector<ChatMessage>& messages,
                                       const TemplateVars* vars = nullptr) const;

  // Whether the template is rendered by the Jinja engine (not a built-in one).
  bool is_jinja() const { return format_ == Format::kJinja; }

 private:
  enum class Format { kChatMl, kLlama3, kPlain, kJinja };

  ChatTemplate() = default;
  jinja::RenderResult render_jinja(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                   const TemplateVars* vars) const;

  std::string begin() const;
  std::string open_turn(const std::string& role) const;
  std::string close_turn(const std::string& role) const;
  std::string content_of(const ChatMessage& message) const;

  std::string name_;
  Format format_;
  std::string bos_token_;
  std::string eos_token_;
  std::string default_system_;
  std::shared_ptr<const JinjaTemplate> jinja_;  // kJinja
  std::string source_;                          // kJinja: where the template is from
};

// What recognise_template found: a built-in template and the default system message the original inserts when a
// conversation has none ("" if it does not).
struct RecognisedTemplate {
  std::string name;
  std::string default_system;
};

// Identifies a Hugging Face Jinja chat template (tokenizer_config.json "chat_template") by its distinctive
// markers. Throws UsageError (exit code 2), telling the user to set `chat_template:` in the recipe, for a template
// it cannot identify or one with features the built-in template would not reproduce (thinking blocks, Llama 3.1's
// dated system preamble, a default system message it cannot read). The message starts with `source` (say, which
// model folder the template is from).
RecognisedTemplate recognise_template(std::string_view jinja, std::string_view source = "chat template");

// The chat template of a Hugging Face model directory: chat_template.jinja if present, else tokenizer_config.json
// "chat_template" (a string, or a list of {"name", "template"} from which "default" is taken); nullopt if none.
// Throws std::runtime_error naming the file for anything malformed (DataError when chat_template.jinja is unreadable).
std::optional<std::string> read_chat_template(const std::string& model_dir);

// The Jinja source of `plain` (written into the byte tokenizer's tokenizer_config.json; recognised as plain).
const std::string& plain_template_jinja();

}  // namespace aligntrain::data
