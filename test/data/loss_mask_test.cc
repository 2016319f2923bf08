// Loss masks of conversations (issue 15): every assistant turn from {% generation %} blocks or from rendered
// prefixes, the refusal of a template whose prompt is not a prefix of the whole, extra template variables (the
// stage's chat_template_kwargs, a line's own `chat_template_kwargs` and `tools`), .jinja template files, and how
// the mask reaches collation. (tokenize_parity_test compares the masks with transformers / TRL.)
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "data/chat_template.h"
#include "data/collate.h"
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

const std::vector<ChatMessage> kTwoTurns = {
    {"user", "Hi"}, {"assistant", "Hello"}, {"user", "2+2?"}, {"assistant", "4"}};

std::vector<std::string> spans(const RenderedTurns& t) {
  std::vector<std::string> out;
  for (const auto& [b, e] : t.assistant) out.push_back(t.text.substr(b, e - b));
  return out;
}

TEST(AssistantTurns, ByPrefixesWithABuiltInTemplate) {
  const ChatTemplate chat("chatml", "", "<|im_end|>");
  const RenderedTurns t = chat.render_assistant_turns(kTwoTurns);
  EXPECT_EQ(t.text, chat.render(kTwoTurns, false));
  EXPECT_EQ(spans(t), (std::vector<std::string>{"Hello<|im_end|>\n", "4<|im_end|>\n"}));
}

TEST(AssistantTurns, FromGenerationBlocks) {
  const ChatTemplate chat = ChatTemplate::from_jinja(
      "{% for m in messages %}<{{ m.role }}>{% if m.role == 'assistant' %}{% generation %}{{ m.content }}</s>"
      "{% endgeneration %}{% else %}{{ m.content }}{% endif %}\n{% endfor %}",
      "", "</s>", "test template");
  const RenderedTurns t = chat.render_assistant_turns(kTwoTurns);
  EXPECT_EQ(t.text, "<user>Hi<assistant>Hello</s><user>2+2?<assistant>4</s>");  // trim_blocks
  EXPECT_EQ(spans(t), (std::vector<std::string>{"Hello</s>", "4</s>"}));
}

TEST(AssistantTurns, ATemplateThatRendersEarlierTurnsDifferentlyIsRefused) {
  // Only the last assistant message is rendered with its content (as Qwen3 drops earlier thinking).
  const ChatTemplate chat = ChatTemplate::from_jinja(
      "{% for m in messages %}{{ m.role }}:{% if m.role != 'assistant' or loop.last %}{{ m.content }}{% endif %}\n"
      "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}",
      "", "", "the chat template of the model in M");
  const std::string error = error_of([&] { chat.render_assistant_turns(kTwoTurns); });
  EXPECT_TRUE(contains(error, "the chat template of the model in M: the conversation rendered up to message 1 is not "
                              "the start of the whole"))
      << error;
}

TEST(TemplateVariables, KwargsAndToolsReachTheTemplate) {
  const ChatTemplate chat = ChatTemplate::from_jinja(
      "{% if tools %}[{{ tools | length }} tools: {{ tools[0].function.name }}]{% endif %}"
      "{% for m in messages %}{{ m.content }}{% endfor %}{% if enable_thinking is false %}<no-think>{% endif %}",
      "", "", "t");
  TemplateVars vars = {{"enable_thinking", false}, {"tools", {{{"type", "function"}, {"function", {{"name", "f"}}}}}}};
  EXPECT_EQ(chat.render({{"user", "x"}}, false, &vars), "[1 tools: f]x<no-think>");
  EXPECT_EQ(chat.render({{"user", "x"}}, false), "x");
  // A built-in template renders no tools: an error, never a silently different text.
  const ChatTemplate chatml("chatml", "", "<|im_end|>");
  EXPECT_THROW(chatml.render({{"user", "x"}}, false, &vars), DataError);
  TemplateVars kwargs_only = {{"enable_thinking", false}};
  EXPECT_EQ(chatml.render({{"user", "x"}}, false, &kwargs_only), chatml.render({{"user", "x"}}, false));
}

TEST(TemplateVariables, TheLinesOwnFieldsWinOverTheStagesAndBadOnesNameFileLine) {
  const TempDir dir;
  const std::string jinja = dir.write("t.jinja", "{{ greeting }} {{ name }}|{% for m in messages %}{{ m.content }}{% endfor %}");
  const std::string data = dir.write(
      "d.jsonl", R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], )"
                 R"("chat_template_kwargs": {"name": "Ada"}})" "\n"
                 R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})" "\n");
  const auto examples = read_examples(data, {DataKind::kSft, false});
  EXPECT_EQ(examples[0].template_vars, R"({"name":"Ada"})");
  EXPECT_EQ(examples[1].template_vars, "");
  const ByteTokenizer tokenizer;
  EncodeOptions options;
  options.chat_template_kwargs = R"({"greeting": "Hello", "name": "Bob"})";
  options.keep_text = true;
  const Encoder encoder(tokenizer, jinja, "", options);
  EXPECT_EQ(encoder.encode_example(examples[0], *examples[0].completion, data)->text, "Hello Ada|qa");
  EXPECT_EQ(encoder.encode_example(examples[1], *examples[1].completion, data)->text, "Hello Bob|qa");

  const std::string bad = dir.write(
      "bad.jsonl", R"({"prompt": "q", "completion": "a"})" "\n" R"({"prompt": "q", "completion": "a", "tools": {}})" "\n"
                   R"({"prompt": "q", "completion": "a", "tools": [1]})" "\n"
                   R"({"prompt": "q", "completion": "a", "chat_template_kwargs": "x"})" "\n");
  ReadReport report;
  read_examples(bad, {DataKind::kSft, true}, &report);
  ASSERT_EQ(report.first_errors.size(), 3u);
  EXPECT_TRUE(contains(report.first_errors[0], bad + ":2: tools: expected a list of tool schemas"));
  EXPECT_TRUE(contains(report.first_errors[1], bad + ":3: tools[0]: expected a tool schema"));
  EXPECT_TRUE(contains(report.first_errors[2], bad + ":4: chat_template_kwargs: expected an object"));
  EXPECT_TRUE(contains(error_of([&] {
                         EncodeOptions o;
                         o.chat_template_kwargs = "[1]";
                         Encoder(tokenizer, jinja, "", o);
                       }),
                       "chat_template_kwargs: expected a JSON object"));
}

// A model template recognised as a built-in one renders examples with template variables through the Jinja engine
// (the built-in one would ignore them, or refuse tools).
TEST(TemplateVariables, AnAutoTemplateRecognisedAsBuiltInStillSeesTools) {
  const TempDir dir;
  dir.write("tokenizer_config.json",
            nlohmann::json({{"chat_template",
                             "{% if tools %}<tools>{{ tools | length }}</tools>{% endif %}{% for m in messages %}"
                             "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                             "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"}})
                .dump());
  EXPECT_EQ(recognise_template(*read_chat_template(dir.str())).name, "chatml");
  const ByteTokenizer tokenizer;
  EncodeOptions options;
  options.keep_text = true;
  const Encoder encoder(tokenizer, "auto", dir.str(), options);
  Text prompt, response;
  prompt.conversational = response.conversational = true;
  prompt.messages = {{"user", "q"}};
  response.messages = {{"assistant", "a"}};
  EXPECT_EQ(encoder.encode(prompt, response, nullptr, R"({"tools": [{"type": "function"}]})")->text,
            "<tools>1</tools><|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n");
  EXPECT_EQ(encoder.encode(prompt, response)->text, "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n");
}

TEST(TemplateVariables, ARaisedErrorNamesTheExamplesFileAndLine) {
  const TempDir dir;
  const std::string jinja = dir.write("t.jinja", "{% if tools %}{{ raise_exception('no tools here') }}{% endif %}x");
  const std::string data = dir.write(
      "d.jsonl", R"({"prompt": "q", "completion": "a"})" "\n"
                 R"({"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "assistant", "content": "a"}], "tools": []})" "\n"
                 R"({"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "assistant", "content": "a"}], "tools": [{"a": 1}]})" "\n");
  const auto examples = read_examples(data, {DataKind::kSft, false});
  const ByteTokenizer tokenizer;
  const Encoder encoder(tokenizer, jinja, "", {});
  try {
    encoder.encode_example(examples[2], *examples[2].completion, data);
    ADD_FAILURE() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), data + ":3: the chat template " + jinja + " rejects the conversation: no tools here"))
        << e.what();
  }
}

TEST(LossMask, EveryAssistantTurnReachesCollation) {
  const TempDir dir;
  const std::string data = dir.write(
      "d.jsonl", R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}, )"
                 R"({"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]})" "\n");
  const auto ex = read_examples(data, {DataKind::kSft, false}).at(0);
  const ByteTokenizer tokenizer;
  EncodeOptions options;
  options.assistant_only_loss = true;
  options.keep_text = true;
  const Encoder every(tokenizer, "plain", "", options);
  const auto e = every.encode_example(ex, *ex.completion, data);
  ASSERT_TRUE(e);
  // plain: BOS "User: Hi\nAssistant: " "Yo" EOS "User: Q\nAssistant: " "A" EOS -- with the byte tokenizer one id per
  // byte (BOS and EOS are special tokens).
  std::string marks;
  for (uint8_t m : loss_mask_of(*e)) marks += m ? '1' : '0';
  const std::string p1(1 + std::string("User: Hi\nAssistant: ").size(), '0');
  const std::string p2(std::string("User: Q\nAssistant: ").size(), '0');
  EXPECT_EQ(marks, p1 + "111" + p2 + "11");
  EXPECT_EQ(e->prompt_len, static_cast<int64_t>(p1.size()));
  EXPECT_EQ(loss_tokens(*e, false), 5);
  const Batch b = collate({{&*e}}, {});
  EXPECT_EQ(b.loss_tokens, 5);
  for (size_t t = 0; t < marks.size(); ++t) EXPECT_EQ(b.loss_mask[t], marks[t] == '1' ? 1 : 0) << t;
  // Plain-text data has no assistant turns: an error naming the line, not a silently different loss.
  const std::string plain = dir.write("p.jsonl", R"({"prompt": "q", "completion": "a"})" "\n");
  const auto pex = read_examples(plain, {DataKind::kSft, false}).at(0);
  EXPECT_TRUE(contains(error_of([&] { every.encode_example(pex, *pex.completion, plain); }),
                       plain + ":1: assistant_only_loss takes the loss on the assistant turns"));
  // The default: only the last turn.
  const Encoder last(tokenizer, "plain", "", {});
  const auto l = last.encode_example(ex, *ex.completion, data);
  EXPECT_TRUE(l->loss_mask.empty());
  EXPECT_EQ(loss_tokens(*l, false), 2);
  // Truncation keeps ids and mask aligned; left truncation cuts the prompt before the first loss token.
  options.max_length = 10;
  options.truncate = Truncate::kLeft;
  const auto cut = Encoder(tokenizer, "plain", "", options).encode_example(ex, *ex.completion, data);
  ASSERT_TRUE(cut);
  EXPECT_EQ(cut->ids.size(), 10u);
  EXPECT_EQ(cut->loss_mask.size(), 10u);
  EXPECT_EQ(cut->prompt_len, 0);
  EXPECT_EQ(cut->loss_mask[0], 1);
}

}  // namespace
}  // namespace aligntrain::data
