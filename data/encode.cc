// See encode.h.
#include "data/encode.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/errors.h"

namespace aligntrain::data {

namespace {

std::string token_text(const Tokenizer& tok, std::optional<int32_t> id) {
  if (!id) return "";
  return tok.id_to_token(*id).value_or("");
}

std::vector<ChatMessage> chat_messages(const std::vector<Message>& in) {
  std::vector<ChatMessage> out;
  for (const auto& m : in) out.push_back({m.role, m.content, m.json});
  return out;
}

}  // namespace

Encoder::Encoder(const Tokenizer& tokenizer, const std::string& name, const std::string& model_dir,
                 EncodeOptions options)
    : tokenizer_(tokenizer), options_(options) {
  const std::string bos = token_text(tokenizer, tokenizer.bos_id());
  const std::string eos = token_text(tokenizer, tokenizer.eos_id());
  kwargs_ = TemplateVars::object();
  if (!options_.chat_template_kwargs.empty()) {
    try {
      kwargs_ = TemplateVars::parse(options_.chat_template_kwargs);
    } catch (const nlohmann::json::exception& e) {
      throw UsageError(std::string("chat_template_kwargs: invalid JSON: ") + e.what());
    }
    if (!kwargs_.is_object()) throw UsageError("chat_template_kwargs: expected a JSON object");
  }
  if (std::filesystem::path(name).extension() == ".jinja") {
    std::ifstream in(name, std::ios::binary);
    if (!in) throw DataError(name + ": cannot open chat template file");
    std::stringstream text;
    text << in.rdbuf();
    template_.emplace(ChatTemplate::from_jinja(text.str(), bos, eos, "the chat template " + name));
    return;
  }
  if (name == "none") {
    template_error_ = "needs a chat template, but chat_template is `none`";
    return;
  }
  if (name != "auto") {
    try {
      template_.emplace(name, bos, eos);
    } catch (const std::invalid_argument& e) {  // `plain` with a tokenizer that has no EOS token
      throw UsageError("chat_template `" + name + "`: " + e.what());
    }
    return;
  }
  std::optional<std::string> jinja;
  try {
    jinja = read_chat_template(model_dir);
  } catch (const DataError&) {
    throw;
  } catch (const std::exception& e) {
    throw DataError(e.what());  // a malformed tokenizer_config.json is a model-file error (exit code 3)
  }
  if (!jinja) {
    template_error_ = "needs a chat template, but the model in " + model_dir +
                      " has none; set `chat_template:` (chatml, llama3 or plain)";
    return;
  }
  // A template recognised as a built-in one renders through it; any other through the Jinja engine, exactly as
  // transformers renders it. A template that does not compile is an error only for conversational data (plain text
  // needs none).
  const std::string source = "the chat template of the model in " + model_dir;
  try {
    const auto found = recognise_template(*jinja, source);
    template_.emplace(found.name, bos, eos, found.default_system);
    // Examples with template variables (tools, kwargs) render through the model's own template, which may use them.
    try {
      own_template_.emplace(ChatTemplate::from_jinja(*jinja, bos, eos, source));
    } catch (const UsageError&) {
    }
  } catch (const UsageError&) {
    try {
      template_.emplace(ChatTemplate::from_jinja(*jinja, bos, eos, source));
    } catch (const UsageError& e) {
      template_error_ = e.what();
    }
  } catch (const std::invalid_argument& e) {  // recognised as `plain`, but the tokenizer has no EOS token
    template_error_ = source + ": " + e.what();
  }
}

const ChatTemplate& Encoder::chat(const char* what, const TemplateVars* vars,
                                  const std::vector<ChatMessage>& messages) const {
  if (own_template_ && (vars || std::any_of(messages.begin(), messages.end(), is_tool_turn))) return *own_template_;
  if (!template_) throw UsageError(std::string("conversational ") + what + ": " + template_error_);
  return *template_;
}

std::vector<int32_t> Encoder::encode_prompt(const Text& prompt, const std::string& vars) const {
  if (prompt.conversational) {
    const TemplateVars template_vars = variables(vars);
    const TemplateVars* tv = template_vars.empty() ? nullptr : &template_vars;
    const std::vector<ChatMessage> messages = chat_messages(prompt.messages);
    return tokenizer_.encode(chat("prompts", tv, messages).render(messages, true, tv));
  }
  std::vector<int32_t> ids;
  if (tokenizer_.bos_id()) ids.push_back(*tokenizer_.bos_id());
  const auto body = tokenizer_.encode(prompt.text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

std::string Encoder::render_conversation(const std::vector<Message>& messages, const std::string& vars) const {
  const TemplateVars template_vars = variables(vars);
  const TemplateVars* tv = template_vars.empty() ? nullptr : &template_vars;
  const std::vector<ChatMessage> chat_msgs = chat_messages(messages);
  return chat("conversations", tv, chat_msgs).render(chat_msgs, false, tv);
}

TemplateVars Encoder::variables(const std::string& vars) const {
  TemplateVars out = kwargs_;
  if (vars.empty()) return out;
  const TemplateVars own = TemplateVars::parse(vars);  // validated by the reader
  for (const auto& [key, value] : own.items()) out[key] = value;
  return out;
}

std::vector<uint8_t> loss_mask_of(const Encoded& e) {
  if (!e.loss_mask.empty()) return e.loss_mask;
  std::vector<uint8_t> mask(e.ids.size(), 0);
  for (size_t i = static_cast<size_t>(std::max<int64_t>(0, e.prompt_len)); i < mask.size(); ++i) mask[i] = 1;
  return mask;
}

std::optional<Encoded> Encoder::encode_example(const Example& ex, const Text& response, const std::string& path,
                                               EncodeStats* stats) const {
  const std::string where = path + ":" + std::to_string(ex.line) + ": ";
  try {
    return encode(ex.prompt, response, stats, ex.template_vars);
  } catch (const DataError& e) {
    throw DataError(where + e.what());
  } catch (const UsageError& e) {
    throw UsageError(where + e.what());
  }
}

std::optional<Encoded> Encoder::encode(const Text& prompt, const Text& response, EncodeStats* stats,
                                       const std::string& vars) const {
  EncodeStats local;
  EncodeStats& st = stats ? *stats : local;
  std::vector<int32_t> p, r;
  std::string text;
  if (prompt.conversational || response.conversational) {
    if (!prompt.conversational || !response.conversational) {
      throw DataError("prompt and response must both be strings or both be message lists");
    }
    auto messages = chat_messages(prompt.messages);
    for (const auto& m : chat_messages(response.messages)) messages.push_back(m);
    const TemplateVars template_vars = variables(vars);
    const TemplateVars* tv = template_vars.empty() ? nullptr : &template_vars;
    if (options_.assistant_only_loss) {
      RenderedTurns turns = chat("data", tv, messages).render_assistant_turns(messages, tv);
      // Tokenised piece by piece at the turns' boundaries, as prompt and completion are.
      std::vector<int32_t> ids;
      std::vector<uint8_t> mask;
      size_t at = 0;
      auto piece = [&](size_t end, uint8_t loss) {
        if (end <= at) return;
        const auto part = tokenizer_.encode(std::string_view(turns.text).substr(at, end - at));
        ids.insert(ids.end(), part.begin(), part.end());
        mask.insert(mask.end(), part.size(), loss);
        at = end;
      };
      for (const auto& [begin, end] : turns.assistant) {
        if (begin < at) continue;  // overlapping ranges (a block inside a block): the outer one counted
        piece(begin, 0);
        piece(end, 1);
      }
      piece(turns.text.size(), 0);
      auto e = finish_masked(std::move(ids), std::move(mask), st);
      if (e && options_.keep_text) e->text = std::move(turns.text);
      return e;
    }
    auto pc = chat("data", tv, messages).render_for_training(messages, tv);
    p = tokenizer_.encode(pc.prompt);
    r = tokenizer_.encode(pc.completion);
    if (options_.keep_text) text = pc.prompt + pc.completion;
  } else {
    if (options_.assistant_only_loss) {
      throw DataError("assistant_only_loss takes the loss on the assistant turns of conversations, but this example "
                      "is plain text (prompt and completion strings)");
    }
    p = encode_prompt(prompt);
    r = tokenizer_.encode(response.text);
    if (options_.append_eos && tokenizer_.eos_id()) r.push_back(*tokenizer_.eos_id());
    if (options_.keep_text) text = prompt.text + response.text;  // BOS and EOS are ids, not text
  }
  auto e = finish(std::move(p), std::move(r), st);
  if (e && options_.keep_text) e->text = std::move(text);
  return e;
}

std::optional<Encoded> Encoder::finish(std::vector<int32_t> p, std::vector<int32_t> r, EncodeStats& st) const {
  const int64_t max = options_.max_length;
  if (max > 0 && static_cast<int64_t>(p.size() + r.size()) > max) {
    if (options_.truncate == Truncate::kDrop) {
      ++st.dropped;
      return std::nullopt;
    }
    ++st.truncated;
    if (options_.truncate == Truncate::kLeft) {
      const int64_t cut = std::min<int64_t>(static_cast<int64_t>(p.size() + r.size()) - max, p.size());
      p.erase(p.begin(), p.begin() + cut);
    }
    const int64_t room = std::max<int64_t>(0, max - static_cast<int64_t>(p.size()));
    if (static_cast<int64_t>(r.size()) > room) r.resize(room);
    if (static_cast<int64_t>(p.size()) > max) p.resize(max);
  }
  if (r.empty()) {
    ++st.dropped;
    return std::nullopt;
  }
  ++st.encoded;
  Encoded e;
  e.prompt_len = static_cast<int64_t>(p.size());
  e.ids = std::move(p);
  e.ids.insert(e.ids.end(), r.begin(), r.end());
  return e;
}

// The truncation of finish() with a mask: the "prompt" is everything before the first loss token.
std::optional<Encoded> Encoder::finish_masked(std::vector<int32_t> ids, std::vector<uint8_t> mask,
                                              EncodeStats& st) const {
  const int64_t max = options_.max_length;
  auto first_loss = [&] {
    return static_cast<int64_t>(std::find(mask.begin(), mask.end(), 1) - mask.begin());
  };
  if (max > 0 && static_cast<int64_t>(ids.size()) > max) {
    if (options_.truncate == Truncate::kDrop) {
      ++st.dropped;
      return std::nullopt;
    }
    ++st.truncated;
    if (options_.truncate == Truncate::kLeft) {
      const int64_t cut = std::min<int64_t>(static_cast<int64_t>(ids.size()) - max, first_loss());
      ids.erase(ids.begin(), ids.begin() + cut);
      mask.erase(mask.begin(), mask.begin() + cut);
    }
    if (static_cast<int64_t>(ids.size()) > max) {
      ids.resize(static_cast<size_t>(max));
      mask.resize(static_cast<size_t>(max));
    }
  }
  const int64_t prompt_len = first_loss();
  if (prompt_len >= static_cast<int64_t>(ids.size())) {
    ++st.dropped;
    return std::nullopt;
  }
  ++st.encoded;
  Encoded e;
  e.prompt_len = prompt_len;
  e.ids = std::move(ids);
  e.loss_mask = std::move(mask);
  return e;
}

}  // namespace aligntrain::data
