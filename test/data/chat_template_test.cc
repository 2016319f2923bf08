// Unit tests for the built-in chat templates, the prompt/completion split, recognition of Jinja templates and
// reading a model directory's template, and how their errors reach the user: an unknown role in a data file is a
// DataError naming FILE:LINE (exit code 3), a model template aligntrain does not reproduce a UsageError naming the
// model folder (exit code 2). (tokenizer_parity_check renders the same conversations with transformers' Jinja
// renderer and compares.)
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "data/chat_template.h"
#include "data/encode.h"
#include "data/example.h"
#include "data/tokenizer_byte.h"
#include "test/data/error_matchers.h"
#include "test/data/temp_dir.h"

namespace aligntrain::data {
namespace {

using testing::contains;
using testing::error_of;
using testing::TempDir;

const std::vector<ChatMessage> kConversation = {
    {"system", "Be brief."}, {"user", "Hi!"}, {"assistant", " Hello. "}, {"user", "2+2?"}, {"assistant", "4"}};

TEST(ChatTemplate, ChatMl) {
  const ChatTemplate chat("chatml", "", "<|im_end|>");
  EXPECT_EQ(chat.render({{"user", "Hi!"}}, true), "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n");
  const PromptCompletion pc = chat.render_for_training(kConversation);
  EXPECT_EQ(pc.prompt,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
            "<|im_start|>assistant\n Hello. <|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(pc.completion, "4<|im_end|>\n");
}

TEST(ChatTemplate, ChatMlWithDefaultSystemMessage) {
  const ChatTemplate chat("chatml", "", "<|im_end|>", "You are a helpful assistant.");
  EXPECT_EQ(chat.render({{"user", "Hi!"}}, false),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n");
  EXPECT_EQ(chat.render({{"system", "S"}}, false), "<|im_start|>system\nS<|im_end|>\n");
}

TEST(ChatTemplate, Llama3TrimsContent) {
  const ChatTemplate chat("llama3", "<|begin_of_text|>", "<|eot_id|>");
  const PromptCompletion pc = chat.render_for_training({{"user", "  Hi!\n"}, {"assistant", "\tHello.  "}});
  EXPECT_EQ(pc.prompt,
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(pc.completion, "Hello.<|eot_id|>");
}

TEST(ChatTemplate, Plain) {
  const ChatTemplate chat("plain", "<|bos|>", "<|eos|>");
  const PromptCompletion pc = chat.render_for_training(kConversation);
  EXPECT_EQ(pc.prompt, "<|bos|>System: Be brief.\nUser: Hi!\nAssistant:  Hello. <|eos|>User: 2+2?\nAssistant: ");
  EXPECT_EQ(pc.completion, "4<|eos|>");
  EXPECT_EQ(ChatTemplate("plain", "", "</s>").render({{"user", "x"}}, true), "User: x\nAssistant: ");
}

TEST(ChatTemplate, PromptPlusCompletionIsTheWholeConversation) {
  for (const std::string& name : chat_template_names()) {
    const ChatTemplate chat(name, "<s>", "</s>", "Default.");
    const PromptCompletion pc = chat.render_for_training(kConversation);
    EXPECT_EQ(pc.prompt + pc.completion, chat.render(kConversation, false)) << name;
  }
}

TEST(ChatTemplate, Errors) {
  EXPECT_TRUE(contains(error_of([] { ChatTemplate("vicuna", "", ""); }), "known: chatml, llama3, plain"));
  EXPECT_TRUE(contains(error_of([] { ChatTemplate("plain", "<s>", ""); }), "EOS"));
  const ChatTemplate chat("chatml", "", "");
  EXPECT_TRUE(contains(error_of([&] { chat.render({}, true); }), "empty"));
  EXPECT_TRUE(contains(error_of([&] { chat.render({{"bot", "x"}}, true); }), "unknown role 'bot'"));
  EXPECT_THROW(chat.render({{"bot", "x"}}, true), DataError);  // the role came from someone's data: exit code 3
  EXPECT_TRUE(contains(error_of([&] { chat.render({{"user", "q"}, {"tool", "x"}}, true); }),
                       "the built-in chat template chatml renders no tool calls or tool results"));
  EXPECT_THROW(chat.render({{"tool", "x"}}, true), DataError);
  EXPECT_TRUE(contains(error_of([&] { chat.render_for_training({{"assistant", "x"}}); }), "must end with"));
  EXPECT_TRUE(contains(error_of([&] { chat.render_for_training({{"user", "x"}, {"user", "y"}}); }), "must end with"));
}

TEST(RecogniseTemplate, ChatMlAndItsDefaultSystemMessage) {
  const std::string generic =
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
      "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  EXPECT_EQ(recognise_template(generic).name, "chatml");
  EXPECT_EQ(recognise_template(generic).default_system, "");
  const std::string qwen2 =
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
      "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
      "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  EXPECT_EQ(recognise_template(qwen2).name, "chatml");
  EXPECT_EQ(recognise_template(qwen2).default_system, "You are a helpful assistant.");
}

TEST(RecogniseTemplate, Llama3AndPlain) {
  EXPECT_EQ(recognise_template("{{ bos_token }}<|start_header_id|>{{ role }}<|end_header_id|>\n\n{{ c }}<|eot_id|>").name,
            "llama3");
  EXPECT_EQ(recognise_template(plain_template_jinja()).name, "plain");
}

TEST(RecogniseTemplate, WhatItWouldNotReproduceIsAnError) {
  const std::vector<std::string> refused = {
      "{{ '<|im_start|>' }}{% if enable_thinking %}<think>\\n\\n</think>{% endif %}<|im_end|>",
      "<|start_header_id|>system<|end_header_id|>\\n\\nCutting Knowledge Date: December 2023<|eot_id|>",
      "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\n' + default_system + '<|im_end|>' }}{% endif %}",
      "<|im_start|><|im_end|><|start_header_id|><|end_header_id|><|eot_id|>",
      "{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}",
  };
  for (const std::string& jinja : refused) {
    const std::string error = error_of([&] { recognise_template(jinja); });
    EXPECT_TRUE(contains(error, "Set `chat_template:` in the recipe")) << error;
    EXPECT_THROW(recognise_template(jinja), UsageError) << jinja;  // a recipe error: exit code 2
    EXPECT_TRUE(contains(error_of([&] { recognise_template(jinja, "/models/m"); }), "/models/m: ")) << jinja;
  }
}

TEST(ReadChatTemplate, FromTheModelDirectory) {
  const TempDir dir;
  EXPECT_EQ(read_chat_template(dir.str()), std::nullopt);
  dir.write("tokenizer_config.json", R"({"eos_token": "</s>"})");
  EXPECT_EQ(read_chat_template(dir.str()), std::nullopt);
  dir.write("tokenizer_config.json", R"({"chat_template": [{"name": "tool_use", "template": "T"},
                                                            {"name": "default", "template": "D"}]})");
  EXPECT_EQ(read_chat_template(dir.str()), "D");
  dir.write("tokenizer_config.json", R"({"chat_template": "C"})");
  EXPECT_EQ(read_chat_template(dir.str()), "C");
  dir.write("chat_template.jinja", "J");  // takes precedence, as in transformers
  EXPECT_EQ(read_chat_template(dir.str()), "J");
}

TEST(ReadChatTemplate, ListWithoutDefaultIsAnError) {
  const TempDir dir;
  dir.write("tokenizer_config.json", R"({"chat_template": [{"name": "rag", "template": "R"}]})");
  const std::string error = error_of([&] { read_chat_template(dir.str()); });
  EXPECT_TRUE(contains(error, "tokenizer_config.json: field 'chat_template'")) << error;
}

// ---- errors as the data reader and the encoder report them ---------------------------------------------------------

// The DataError message of reading `path`; a test failure if nothing or something else is thrown.
std::string data_error_of(const std::string& path, ReadOptions options = {}) {
  try {
    read_examples(path, options);
  } catch (const DataError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected DataError, got: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected DataError, nothing was thrown";
  return "";
}

const std::string kGoodChat =
    R"({"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]})";

TEST(ChatData, AnUnknownRoleIsADataErrorNamingFileLineAndField) {
  const TempDir dir;
  const std::string sft = dir.write(
      "sft.jsonl", kGoodChat + "\n" +
                       R"({"messages": [{"role": "user", "content": "a"}, {"role": "ipython", "content": "b"}, )"
                       R"({"role": "assistant", "content": "c"}]})" "\n");
  const std::string error = data_error_of(sft, {DataKind::kSft, false});
  EXPECT_TRUE(contains(error, sft + ":2: messages[1].role: unknown role 'ipython' (expected system, user, assistant "
                                    "or tool)"))
      << error;
  // In a preference pair's responses and with the kind detected, too.
  const std::string pairs = dir.write(
      "pairs.jsonl", R"({"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", )"
                     R"("content": "a"}], "rejected": [{"role": "bot", "content": "b"}]})" "\n");
  EXPECT_TRUE(contains(data_error_of(pairs), pairs + ":1: rejected[0].role: unknown role 'bot'"));
  // skip_invalid skips such a line like any other invalid one, and says which.
  ReadReport report;
  const auto examples = read_examples(sft, {DataKind::kSft, true}, &report);
  EXPECT_EQ(examples.size(), 1u);
  EXPECT_EQ(report.skipped, 1);
  ASSERT_EQ(report.first_errors.size(), 1u);
  EXPECT_TRUE(contains(report.first_errors[0], sft + ":2: messages[1].role: unknown role 'ipython'"));
}

TEST(ChatData, APromptAndAResponseOfDifferentKindsAreADataErrorNamingFileLineAndField) {
  const TempDir dir;
  const std::string mixed = dir.write(
      "mixed.jsonl", kGoodChat + "\n" + R"({"prompt": "q", "completion": [{"role": "assistant", "content": "a"}]})" +
                         "\n" + R"({"prompt": [{"role": "user", "content": "q"}], "completion": "a"})" + "\n");
  EXPECT_TRUE(contains(data_error_of(mixed, {DataKind::kSft, false}),
                       mixed + ":2: completion: a message list, but the prompt is a string"));
  ReadReport report;
  read_examples(mixed, {DataKind::kSft, true}, &report);
  ASSERT_EQ(report.first_errors.size(), 2u);
  EXPECT_TRUE(contains(report.first_errors[1], mixed + ":3: completion: a string, but the prompt is a message list"));
}

// A model folder whose tokenizer_config.json holds `jinja` as its chat template.
std::string model_with_template(const TempDir& dir, const std::string& jinja) {
  dir.write("tokenizer_config.json", nlohmann::json({{"chat_template", jinja}}).dump());
  return dir.str();
}

TEST(ChatData, AModelTemplateThatDoesNotCompileIsAUsageErrorNamingTheModelFolderWhenChatDataNeedsIt) {
  const TempDir dir;
  const std::string model = model_with_template(dir, "{% for m in messages %}[INST] {{ m['content'] }} [/INST]");
  const ByteTokenizer tokenizer;
  const Encoder encoder(tokenizer, "auto", model, {});
  Text prompt, response;
  prompt.conversational = response.conversational = true;
  prompt.messages = {{"user", "2+2?"}};
  response.messages = {{"assistant", "4"}};
  try {
    encoder.encode(prompt, response);
    ADD_FAILURE() << "expected UsageError";
  } catch (const UsageError& e) {
    const std::string error = e.what();
    EXPECT_TRUE(contains(error, "the chat template of the model in " + model + ": chat template line 1, column"))
        << error;
    EXPECT_TRUE(contains(error, "'endfor'")) << error;
  }
  EXPECT_THROW(encoder.encode_prompt(prompt), UsageError);
  // Plain text needs no template: [BOS] prompt completion [EOS].
  Text plain_prompt, plain_response;
  plain_prompt.text = "a";
  plain_response.text = "b";
  const auto encoded = encoder.encode(plain_prompt, plain_response);
  ASSERT_TRUE(encoded.has_value());
  EXPECT_EQ(encoded->ids, (std::vector<int32_t>{ByteTokenizer::kBos, 'a', 'b', ByteTokenizer::kEos}));
  EXPECT_EQ(encoded->prompt_len, 2);
}

// A template that is none of the built-in ones renders through the Jinja engine, as transformers renders it; the
// completion is what the full conversation adds to the prompt (TRL's split).
TEST(ChatData, AnUnrecognisedModelTemplateRendersThroughTheJinjaEngine) {
  const TempDir dir;
  const std::string model = model_with_template(
      dir,
      "{{ bos_token }}{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}"
      "{{ raise_exception('roles must alternate') }}{% endif %}"
      "{% if m.role == 'user' %}[INST] {{ m.content | trim }} [/INST]{% else %} {{ m.content }}{{ eos_token }}"
      "{% endif %}{% endfor %}");
  const ByteTokenizer tokenizer;
  const Encoder encoder(tokenizer, "auto", model, {});
  Text prompt, response;
  prompt.conversational = response.conversational = true;
  prompt.messages = {{"user", " 2+2? "}};
  response.messages = {{"assistant", "4"}};
  const auto encoded = encoder.encode(prompt, response);
  ASSERT_TRUE(encoded.has_value());
  EXPECT_EQ(encoded->ids, tokenizer.encode("<|bos|>[INST] 2+2? [/INST] 4<|eos|>"));
  EXPECT_EQ(encoded->prompt_len, static_cast<int64_t>(tokenizer.encode("<|bos|>[INST] 2+2? [/INST]").size()));
  // raise_exception is the data's fault (exit code 3), with the template's message.
  Text bad;
  bad.conversational = true;
  bad.messages = {{"user", "a"}, {"user", "b"}};
  try {
    encoder.encode(bad, response);
    ADD_FAILURE() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "the chat template of the model in " + model +
                                       " rejects the conversation: roles must alternate"))
        << e.what();
  }
}

// A template whose full rendering does not extend its prompt's cannot be split into prompt and completion.
TEST(ChatData, AJinjaTemplateWhosePromptIsNotAPrefixIsAUsageError) {
  const TempDir dir;
  const std::string model = model_with_template(
      dir, "{% for m in messages %}{{ m.role }}: {{ m.content }}{% if not loop.last %}\n{% endif %}{% endfor %}"
           "{% if add_generation_prompt %} => {% endif %}");
  const ByteTokenizer tokenizer;
  const Encoder encoder(tokenizer, "auto", model, {});
  Text prompt, response;
  prompt.conversational = response.conversational = true;
  prompt.messages = {{"user", "q"}};
  response.messages = {{"assistant", "a"}};
  EXPECT_THROW(encoder.encode(prompt, response), UsageError);
}

TEST(ChatData, ARecognisedModelTemplateStillRenders) {
  const TempDir dir;
  const ByteTokenizer tokenizer;
  const Encoder encoder(tokenizer, "auto", model_with_template(dir, plain_template_jinja()), {});
  Text prompt;
  prompt.conversational = true;
  prompt.messages = {{"user", "x"}};
  EXPECT_EQ(encoder.encode_prompt(prompt), tokenizer.encode("<|bos|>User: x\nAssistant: "));
}

}  // namespace
}  // namespace aligntrain::data
