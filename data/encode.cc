// See encode.h.
#include "data/encode.h"

#include <algorithm>
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
  for (const auto& m : in) out.push_back({m.role, m.content});
  return out;
}

}  // namespace

Encoder::Encoder(const Tokenizer& tokenizer, const std::string& name, const std::string& model_dir,
                 EncodeOptions options)
    : tokenizer_(tokenizer), options_(options) {
  const std::string bos = token_text(tokenizer, tokenizer.bos_id());
  const std::string eos = token_text(tokenizer, tokenizer.eos_id());
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

const ChatTemplate& Encoder::chat(const char* what) const {
  if (!template_) throw UsageError(std::string("conversational ") + what + ": " + template_error_);
  return *template_;
}

std::vector<int32_t> Encoder::encode_prompt(const Text& prompt) const {
  if (prompt.conversational) return tokenizer_.encode(chat("prompts").render(chat_messages(prompt.messages), true));
  std::vector<int32_t> ids;
  if (tokenizer_.bos_id()) ids.push_back(*tokenizer_.bos_id());
  const auto body = tokenizer_.encode(prompt.text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

std::optional<Encoded> Encoder::encode(const Text& prompt, const Text& response, EncodeStats* stats) const {
  std::vector<int32_t> p, r;
  if (prompt.conversational || response.conversational) {
    if (!prompt.conversational || !response.conversational) {
      throw DataError("prompt and response must both be strings or both be message lists");
    }
    auto messages = chat_messages(prompt.messages);
    for (const auto& m : chat_messages(response.messages)) messages.push_back(m);
    const auto pc = chat("data").render_for_training(messages);
    p = tokenizer_.encode(pc.prompt);
    r = tokenizer_.encode(pc.completion);
  } else {
    p = encode_prompt(prompt);
    r = tokenizer_.encode(response.text);
    if (options_.append_eos && tokenizer_.eos_id()) r.push_back(*tokenizer_.eos_id());
  }
  EncodeStats local;
  EncodeStats& st = stats ? *stats : local;
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

}  // namespace aligntrain::data
