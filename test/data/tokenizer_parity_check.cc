// Parity of aligntrain's tokenizers with the Hugging Face libraries, on the fixtures that
// scripts/make_test_tokenizer.py writes into the directory named by $ALIGNTRAIN_TOKENIZER_FIXTURES (the
// tokenizer_parity_test.sh wrapper makes them and runs this): for every test string and every tokenizer variant,
// identical ids, identical decodes, and NFC / NFD / NFKC / NFKD identical to the `tokenizers` normalizers; the
// model directories' special tokens; and chat templates recognised from their Jinja and rendered exactly as
// transformers renders them.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/chat_template.h"
#include "data/tokenizer.h"
#include "data/tokenizer_nfc.h"
#include "data/tokenizer_unicode.h"

namespace aligntrain::data {
namespace {

using nlohmann::json;

std::string fixtures() {
  const char* dir = std::getenv("ALIGNTRAIN_TOKENIZER_FIXTURES");
  if (dir == nullptr) throw std::runtime_error("ALIGNTRAIN_TOKENIZER_FIXTURES is not set (run tokenizer_parity_test.sh)");
  return dir;
}

std::vector<json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  return lines;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  return json::parse(in);
}

std::string from_hex(const std::string& hex) {
  std::string bytes;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) bytes += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return bytes;
}

// The text of a case: a string, or raw bytes that are not valid UTF-8.
std::string case_text(const json& c) { return c.contains("text") ? c["text"].get<std::string>() : from_hex(c["bytes_hex"]); }

std::string shown(const std::string& text) {
  std::string out = json(to_valid_utf8(text)).dump();
  return out.size() > 200 ? out.substr(0, 200) + "...\"" : out;
}

class TokenizerParity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    manifest_ = read_json(fixtures() + "/manifest.json");
    cases_ = read_jsonl(fixtures() + "/cases.jsonl");
  }
  static json manifest_;
  static std::vector<json> cases_;
};
json TokenizerParity::manifest_;
std::vector<json> TokenizerParity::cases_;

TEST_F(TokenizerParity, FixturesAreLargeEnough) {
  EXPECT_GE(manifest_["strings"].get<int>(), 2000);
  EXPECT_EQ(cases_.size(), manifest_["strings"].get<std::size_t>() + manifest_["invalid_utf8"].get<std::size_t>());
  for (const auto& [name, size] : manifest_["vocab_sizes"].items()) EXPECT_GE(size.get<int>(), 2000) << name;
}

TEST_F(TokenizerParity, IdsAndDecodesMatchTheTokenizersLibrary) {
  for (const std::string variant : manifest_["variants"]) {
    const auto tokenizer = load_tokenizer(fixtures() + "/" + variant);
    EXPECT_EQ(tokenizer->vocab_size(), manifest_["vocab_sizes"][variant].get<int>()) << variant;
    int ids_equal = 0, decodes_equal = 0, failures = 0;
    for (std::size_t line = 0; line < cases_.size(); ++line) {
      const json& expected = cases_[line][variant];
      const std::string text = case_text(cases_[line]);
      const std::vector<int32_t> ids = tokenizer->encode(text);
      const bool same_ids = ids == expected["ids"].get<std::vector<int32_t>>();
      const std::vector<int32_t> expected_ids = expected["ids"];
      const bool same_decodes = tokenizer->decode(expected_ids) == expected["decoded"].get<std::string>() &&
                                tokenizer->decode(expected_ids, true) == expected["decoded_skip"].get<std::string>();
      ids_equal += same_ids;
      decodes_equal += same_decodes;
      if ((!same_ids || !same_decodes) && ++failures <= 10) {
        ADD_FAILURE() << variant << " cases.jsonl line " << line + 1 << " text " << shown(text) << "\n  expected ids "
                      << expected["ids"].dump() << "\n  got      ids " << json(ids).dump() << "\n  expected decode "
                      << expected["decoded"].dump() << "\n  got      decode " << json(tokenizer->decode(expected_ids)).dump();
      }
    }
    std::printf("%-12s %d/%zu strings with identical ids, %d/%zu identical decodes\n", variant.c_str(), ids_equal,
                cases_.size(), decodes_equal, cases_.size());
    EXPECT_EQ(ids_equal, static_cast<int>(cases_.size())) << variant;
    EXPECT_EQ(decodes_equal, static_cast<int>(cases_.size())) << variant;
  }
}

TEST_F(TokenizerParity, Llama3StyleRoundTripsEveryValidString) {
  const auto tokenizer = load_tokenizer(fixtures() + "/llama3");
  int round_trips = 0, valid = 0;
  for (const json& c : cases_) {
    if (!c.contains("text")) continue;
    const std::string text = c["text"];
    ++valid;
    const bool ok = tokenizer->decode(tokenizer->encode(text)) == text;
    round_trips += ok;
    EXPECT_TRUE(ok) << shown(text);
  }
  std::printf("llama3       decode(encode(s)) == s for %d/%d strings\n", round_trips, valid);
}

TEST_F(TokenizerParity, NfcAndNfkcMatchTheTokenizersNormalizers) {
  for (const auto& [name, form] : {std::pair{"nfc", UnicodeForm::kNfc}, std::pair{"nfkc", UnicodeForm::kNfkc}}) {
    int equal = 0;
    for (const json& c : cases_) {
      const std::string actual = unicode_normalize(to_valid_utf8(case_text(c)), form);
      const bool ok = actual == c[name].get<std::string>();
      equal += ok;
      EXPECT_TRUE(ok) << name << ": " << shown(case_text(c)) << " -> " << shown(actual) << ", expected "
                      << c[name].dump();
    }
    std::printf("%-12s %d/%zu strings identical\n", name, equal, cases_.size());
  }
}

TEST_F(TokenizerParity, UnicodeFormsMatchOnEveryCharacterTheyCanChange) {
  const std::vector<json> nfc_cases = read_jsonl(fixtures() + "/nfc_cases.jsonl");
  for (const auto& [name, form] : {std::pair{"nfc", UnicodeForm::kNfc}, std::pair{"nfd", UnicodeForm::kNfd},
                                   std::pair{"nfkc", UnicodeForm::kNfkc}, std::pair{"nfkd", UnicodeForm::kNfkd}}) {
    int equal = 0, failures = 0;
    for (const json& c : nfc_cases) {
      const std::string actual = unicode_normalize(c["text"].get<std::string>(), form);
      const bool ok = actual == c[name].get<std::string>();
      equal += ok;
      if (!ok && ++failures <= 10) ADD_FAILURE() << name << ": " << c.dump() << " -> " << json(actual).dump();
    }
    std::printf("%-12s %d/%zu character cases identical\n", name, equal, nfc_cases.size());
    EXPECT_EQ(equal, static_cast<int>(nfc_cases.size())) << name;
  }
}

TEST_F(TokenizerParity, SpecialTokensComeFromTheConfigFiles) {
  const auto id = [](const Tokenizer& t, const char* token) { return t.token_to_id(token); };
  const auto gpt2 = load_tokenizer(fixtures() + "/gpt2");  // strings in tokenizer_config.json
  EXPECT_EQ(gpt2->bos_id(), id(*gpt2, "<|endoftext|>"));
  EXPECT_EQ(gpt2->eos_id(), id(*gpt2, "<|endoftext|>"));
  EXPECT_EQ(gpt2->pad_id(), std::nullopt);
  const auto prefix = load_tokenizer(fixtures() + "/gpt2_prefix");  // AddedToken objects; pad from generation_config
  EXPECT_EQ(prefix->bos_id(), id(*prefix, "<|im_start|>"));
  EXPECT_EQ(prefix->eos_id(), id(*prefix, "<|im_end|>"));
  EXPECT_EQ(prefix->pad_id(), 0);
  const auto llama = load_tokenizer(fixtures() + "/llama3");  // tokenizer_config.json wins over generation_config
  EXPECT_EQ(llama->bos_id(), id(*llama, "<|begin_of_text|>"));
  EXPECT_EQ(llama->eos_id(), id(*llama, "<|eot_id|>"));
  EXPECT_EQ(llama->pad_id(), std::nullopt);
  const auto qwen = load_tokenizer(fixtures() + "/qwen2");
  EXPECT_EQ(qwen->bos_id(), std::nullopt);
  EXPECT_EQ(qwen->eos_id(), id(*qwen, "<|im_end|>"));
  EXPECT_EQ(qwen->pad_id(), id(*qwen, "<|endoftext|>"));
}

TEST_F(TokenizerParity, ChatTemplatesRenderAsTransformersDoes) {
  const std::vector<json> chat_cases = read_jsonl(fixtures() + "/chat_cases.jsonl");
  ASSERT_FALSE(chat_cases.empty());
  int equal = 0;
  for (const json& c : chat_cases) {
    const RecognisedTemplate recognised = recognise_template(c["jinja"].get<std::string>());
    ASSERT_EQ(recognised.name, c["name"]);
    ASSERT_EQ(recognised.default_system, c["default_system"]);
    if (recognised.name == "plain") {
      EXPECT_EQ(c["jinja"].get<std::string>(), plain_template_jinja());
    }
    const ChatTemplate chat(recognised.name, c["bos_token"], c["eos_token"], recognised.default_system);
    std::vector<ChatMessage> messages;
    for (const json& m : c["messages"]) messages.push_back({m["role"], m["content"]});
    const PromptCompletion rendered = chat.render_for_training(messages);
    const bool ok = rendered.prompt == c["prompt"].get<std::string>() &&
                    rendered.prompt + rendered.completion == c["full"].get<std::string>() &&
                    chat.render(messages, false) == c["full"].get<std::string>();
    equal += ok;
    EXPECT_TRUE(ok) << recognised.name << "\n  expected prompt " << c["prompt"].dump() << "\n  got      prompt "
                    << json(rendered.prompt).dump() << "\n  expected full " << c["full"].dump() << "\n  got      full "
                    << json(rendered.prompt + rendered.completion).dump();
  }
  std::printf("chat         %d/%zu conversations rendered identically\n", equal, chat_cases.size());
}

TEST_F(TokenizerParity, ModelDirectoriesChatTemplatesAreRead) {
  const auto llama = read_chat_template(fixtures() + "/llama3");  // chat_template.jinja
  ASSERT_TRUE(llama.has_value());
  EXPECT_EQ(recognise_template(*llama).name, "llama3");
  const auto qwen = read_chat_template(fixtures() + "/qwen2");  // inline in tokenizer_config.json
  ASSERT_TRUE(qwen.has_value());
  EXPECT_EQ(recognise_template(*qwen).name, "chatml");
  EXPECT_EQ(recognise_template(*qwen).default_system,
            "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  EXPECT_EQ(read_chat_template(fixtures() + "/gpt2"), std::nullopt);
}

}  // namespace
}  // namespace aligntrain::data
