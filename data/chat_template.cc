// Built-in chat templates, Jinja template recognition and reading a model's template (see chat_template.h).
#include "data/chat_template.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/errors.h"
#include "data/jinja.h"
#include "data/tokenizer_json.h"
#include "data/tokenizer_unicode.h"

namespace aligntrain::data {
namespace {

const char* const kSetTemplateHint =
    " Set `chat_template:` in the recipe to one of chatml, llama3, plain or a .jinja file to choose the format "
    "explicitly.";

// Python's str.isspace(), which Jinja's `trim` filter strips.
bool is_python_space(char32_t cp) { return is_white_space(cp) || (cp >= 0x1C && cp <= 0x1F); }

// `text` without leading and trailing Python whitespace (Jinja's `trim`); ill-formed UTF-8 counts as non-space.
std::string python_strip(std::string_view text) {
  std::size_t begin = text.size(), end = 0;  // the first and one past the last non-space byte
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t start = pos;
    const Utf8Step step = utf8_step(text, pos);
    std::size_t decode_at = pos;
    const bool space = step.valid && is_python_space(next_code_point(text, decode_at));
    pos += step.length;
    if (!space) {
      begin = std::min(begin, start);
      end = pos;
    }
  }
  return begin < end ? std::string(text.substr(begin, end - begin)) : std::string();
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// A recipe error: the user can name a built-in template instead (exit code 2).
[[noreturn]] void unsupported_template(std::string_view source, const std::string& what) {
  throw UsageError(std::string(source) + ": " + what + "." + kSetTemplateHint);
}

std::string unescape_jinja_literal(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      const char c = text[++i];
      out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
    } else {
      out += text[i];
    }
  }
  return out;
}

// The literal default system message of a ChatML template, as in Qwen's
//   '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'
// (a system turn whose content is plain text, not an expression); "" if there is none.
std::string chatml_default_system(std::string_view jinja) {
  const std::string_view marker = "<|im_start|>system";
  for (std::size_t pos = jinja.find(marker); pos != std::string_view::npos; pos = jinja.find(marker, pos + 1)) {
    std::string_view rest = jinja.substr(pos + marker.size());
    if (rest.substr(0, 2) == "\\n") {
      rest.remove_prefix(2);
    } else if (rest.substr(0, 1) == "\n") {
      rest.remove_prefix(1);
    } else {
      continue;
    }
    const std::size_t end = rest.find("<|im_end|>");
    if (end == std::string_view::npos) continue;
    const std::string_view literal = rest.substr(0, end);
    if (literal.empty() || literal.find_first_of("'\"{}+") != std::string_view::npos) continue;
    return unescape_jinja_literal(literal);
  }
  return "";
}

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path.string() + ": cannot open file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace

const std::vector<std::string>& chat_template_names() {
  static const std::vector<std::string> names = {"chatml", "llama3", "plain"};
  return names;
}

bool is_chat_role(std::string_view role) {
  return role == "system" || role == "user" || role == "assistant" || role == "tool";
}

bool is_tool_turn(const ChatMessage& message) {
  if (message.role == "tool") return true;
  if (!message.json.is_object()) return false;
  const auto calls = message.json.find("tool_calls");
  return calls != message.json.end() && !calls->is_null() && !calls->empty();
}

ChatTemplate::ChatTemplate(std::string_view name, std::string bos_token, std::string eos_token,
                           std::string default_system)
    : name_(name),
      bos_token_(std::move(bos_token)),
      eos_token_(std::move(eos_token)),
      default_system_(std::move(default_system)) {
  if (name_ == "chatml") {
    format_ = Format::kChatMl;
  } else if (name_ == "llama3") {
    format_ = Format::kLlama3;
  } else if (name_ == "plain") {
    format_ = Format::kPlain;
  } else {
    throw std::invalid_argument("unknown chat template '" + name_ + "' (known: chatml, llama3, plain)");
  }
  if (format_ == Format::kPlain && eos_token_.empty()) {
    throw std::invalid_argument(
        "the plain chat template ends each assistant turn with the tokenizer's EOS token, but it has none");
  }
}

ChatTemplate ChatTemplate::from_jinja(std::string_view jinja, std::string bos_token, std::string eos_token,
                                      std::string source) {
  ChatTemplate t;
  t.name_ = "jinja";
  t.format_ = Format::kJinja;
  t.bos_token_ = std::move(bos_token);
  t.eos_token_ = std::move(eos_token);
  t.source_ = std::move(source);
  try {
    t.jinja_ = std::make_shared<const JinjaTemplate>(jinja);
  } catch (const JinjaError& e) {
    throw UsageError(t.source_ + ": " + e.what());
  }
  return t;
}

jinja::RenderResult ChatTemplate::render_jinja(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                               const TemplateVars* vars) const {
  nlohmann::ordered_json variables;
  variables["messages"] = nlohmann::ordered_json::array();
  for (const ChatMessage& m : messages) {
    if (m.json.is_null()) {
      variables["messages"].push_back({{"role", m.role}, {"content", m.content}});
    } else {
      variables["messages"].push_back(m.json);
    }
  }
  variables["tools"] = nullptr;
  variables["documents"] = nullptr;
  variables["add_generation_prompt"] = add_generation_prompt;
  if (!bos_token_.empty()) variables["bos_token"] = bos_token_;
  if (!eos_token_.empty()) variables["eos_token"] = eos_token_;
  if (vars) {
    for (const auto& [key, value] : vars->items()) variables[key] = value;
  }
  try {
    return jinja_->render(variables);
  } catch (const JinjaRaisedError& e) {
    throw DataError(source_ + " rejects the conversation: " + e.what());
  } catch (const JinjaError& e) {
    throw UsageError(source_ + ": " + e.what());
  }
}

std::string ChatTemplate::begin() const {
  switch (format_) {
    case Format::kChatMl: return "";
    case Format::kLlama3: return "<|begin_of_text|>";
    case Format::kPlain: return bos_token_;
    case Format::kJinja: break;  // rendered by render_jinja
  }
  return "";
}

std::string ChatTemplate::open_turn(const std::string& role) const {
  switch (format_) {
    case Format::kChatMl: return "<|im_start|>" + role + "\n";
    case Format::kLlama3: return "<|start_header_id|>" + role + "<|end_header_id|>\n\n";
    case Format::kPlain: return role == "system" ? "System: " : role == "user" ? "User: " : "Assistant: ";
    case Format::kJinja: break;
  }
  return "";
}

std::string ChatTemplate::close_turn(const std::string& role) const {
  switch (format_) {
    case Format::kChatMl: return "<|im_end|>\n";
    case Format::kLlama3: return "<|eot_id|>";
    case Format::kPlain: return role == "assistant" ? eos_token_ : "\n";
    case Format::kJinja: break;
  }
  return "";
}

std::string ChatTemplate::content_of(const ChatMessage& message) const {
  return format_ == Format::kLlama3 ? python_strip(message.content) : message.content;
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                 const TemplateVars* vars) const {
  if (messages.empty()) throw std::invalid_argument("chat template " + name_ + ": the conversation is empty");
  if (format_ == Format::kJinja) return render_jinja(messages, add_generation_prompt, vars).text;
  if (vars && vars->contains("tools") && !(*vars)["tools"].is_null()) {
    throw DataError("tools: the built-in chat template " + name_ +
                    " renders no tools (use the model's own template or a .jinja file)");
  }
  std::string out = begin();
  if (!default_system_.empty() && messages.front().role != "system") {
    out += open_turn("system") + default_system_ + close_turn("system");
  }
  for (const ChatMessage& message : messages) {
    if (is_tool_turn(message)) {
      throw DataError("the built-in chat template " + name_ + " renders no tool calls or tool results (use the "
                      "model's own template or a .jinja file)");
    }
    if (!is_chat_role(message.role)) {
      throw DataError("chat template " + name_ + ": unknown role '" + message.role +
                      "' (expected system, user or assistant)");
    }
    out += open_turn(message.role) + content_of(message) + close_turn(message.role);
  }
  if (add_generation_prompt) out += open_turn("assistant");
  return out;
}

PromptCompletion ChatTemplate::render_for_training(const std::vector<ChatMessage>& messages,
                                                   const TemplateVars* vars) const {
  if (messages.size() < 2 || messages.back().role != "assistant") {
    throw std::invalid_argument("chat template " + name_ +
                                ": a training conversation must end with an assistant message that follows at "
                                "least one other message");
  }
  const std::vector<ChatMessage> context(messages.begin(), messages.end() - 1);
  if (format_ == Format::kJinja) {
    std::string prompt = render(context, true, vars);
    std::string full = render(messages, false, vars);
    if (full.compare(0, prompt.size(), prompt) != 0) {
      throw UsageError(source_ +
                       ": the rendered conversation does not start with its rendered prompt (the template renders "
                       "earlier turns differently once the assistant's reply follows), so the completion cannot be "
                       "split off." + kSetTemplateHint);
    }
    std::string completion = full.substr(prompt.size());
    return {std::move(prompt), std::move(completion)};
  }
  return {render(context, true, vars), content_of(messages.back()) + close_turn("assistant")};
}

RenderedTurns ChatTemplate::render_assistant_turns(const std::vector<ChatMessage>& messages,
                                                   const TemplateVars* vars) const {
  RenderedTurns out;
  if (format_ == Format::kJinja) {
    jinja::RenderResult r = render_jinja(messages, false, vars);
    if (!r.generation_ranges.empty()) {
      out.text = std::move(r.text);
      for (const auto& range : r.generation_ranges)
        if (range.first < range.second && range.second <= out.text.size()) out.assistant.push_back(range);
      return out;
    }
    out.text = std::move(r.text);
  } else {
    out.text = render(messages, false, vars);
  }
  auto require_prefix = [&](const std::string& part, size_t i) {
    if (out.text.compare(0, part.size(), part) != 0) {
      throw UsageError((format_ == Format::kJinja ? source_ : "chat template " + name_) +
                       ": the conversation rendered up to message " + std::to_string(i) +
                       " is not the start of the whole rendered conversation (the template renders earlier turns "
                       "differently once later ones exist), so the assistant turns cannot be told apart; add "
                       "{% generation %} blocks to the template, or train on the last turn only "
                       "(assistant_only_loss: false)");
    }
  };
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role != "assistant") continue;
    const std::vector<ChatMessage> before(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(i));
    const std::vector<ChatMessage> upto(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    const std::string prompt = before.empty() ? std::string() : render(before, true, vars);
    const std::string through = i + 1 == messages.size() ? out.text : render(upto, false, vars);
    require_prefix(prompt, i);
    require_prefix(through, i);
    if (prompt.size() < through.size()) out.assistant.emplace_back(prompt.size(), through.size());
  }
  return out;
}

RecognisedTemplate recognise_template(std::string_view jinja, std::string_view source) {
  if (contains(jinja, "aligntrain:plain")) return {"plain", ""};
  const bool chatml = contains(jinja, "<|im_start|>") && contains(jinja, "<|im_end|>");
  const bool llama3 = contains(jinja, "<|start_header_id|>") && contains(jinja, "<|end_header_id|>") &&
                      contains(jinja, "<|eot_id|>");
  if (chatml && llama3) unsupported_template(source, "it has both ChatML and Llama-3 markers");
  if (chatml) {
    if (contains(jinja, "<think>")) {
      unsupported_template(source, "it is a reasoning template (<think> blocks), which chatml does not reproduce");
    }
    std::string system = chatml_default_system(jinja);
    if (system.empty() && contains(jinja, "messages[0]")) {
      unsupported_template(source,
                           "it treats the first message specially (a default system message?) in a way aligntrain "
                           "cannot read");
    }
    return {"chatml", std::move(system)};
  }
  if (llama3) {
    if (contains(jinja, "Cutting Knowledge Date")) {
      unsupported_template(source,
                           "it is a Llama 3.1+ template whose dated system preamble (\"Cutting Knowledge Date\") "
                           "llama3 does not reproduce");
    }
    return {"llama3", ""};
  }
  unsupported_template(source,
                       "not recognised as ChatML (<|im_start|>, <|im_end|>) or Llama-3 (<|start_header_id|>, "
                       "<|end_header_id|>, <|eot_id|>)");
}

std::optional<std::string> read_chat_template(const std::string& model_dir) {
  const std::filesystem::path dir(model_dir);
  if (std::filesystem::exists(dir / "chat_template.jinja")) return read_text_file(dir / "chat_template.jinja");
  const std::filesystem::path config_path = dir / "tokenizer_config.json";
  if (!std::filesystem::exists(config_path)) return std::nullopt;
  const nlohmann::json config = read_json_file(config_path.string());
  const JsonView root(config, config_path.string());
  const auto chat_template = root.get("chat_template");
  if (!chat_template) return std::nullopt;
  if (chat_template->is_string()) return chat_template->string();
  for (std::size_t i = 0; i < chat_template->array().size(); ++i) {
    const JsonView entry = (*chat_template)[i];
    if (entry["name"].string() == "default") return entry["template"].string();
  }
  chat_template->fail("a list of templates without one named \"default\"");
}

const std::string& plain_template_jinja() {
  static const std::string jinja = R"J({#- aligntrain:plain -#}
{{- bos_token -}}
{%- for message in messages -%}
{%- if message['role'] == 'system' -%}{{- 'System: ' + message['content'] + '\n' -}}
{%- elif message['role'] == 'user' -%}{{- 'User: ' + message['content'] + '\n' -}}
{%- else -%}{{- 'Assistant: ' + message['content'] + eos_token -}}{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- 'Assistant: ' -}}{%- endif -%}
)J";
  return jinja;
}

}  // namespace aligntrain::data
