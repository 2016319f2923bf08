// Conversations with tool calls and tool results in data (issue 15): what the reader accepts and keeps (the
// messages' own JSON, keys in order, as transformers' apply_chat_template receives them), what it refuses (FILE:LINE,
// the field, what was expected), the loss on assistant turns with their tool calls and never on tool results, and
// the built-in templates' refusal. (tokenize_parity_test compares such conversations with transformers / TRL.)
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
using testing::TempDir;

// A user question, an assistant tool call without content, the tool's result, the assistant's answer.
const std::string kToolLine =
    R"({"messages": [{"role": "user", "content": "Weather in Paris?"}, )"
    R"({"role": "assistant", "tool_calls": [{"type": "function", "id": "c1", "function": {"name": "get_weather", )"
    R"("arguments": {"city": "Paris", "unit": "C"}}}]}, )"
    R"({"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": "{\"temp\": 21}"}, )"
    R"({"role": "assistant", "content": "21 C and sunny."}], )"
    R"("tools": [{"type": "function", "function": {"name": "get_weather"}}]})";

// Renders each message as its JSON (tool calls included) between role markers; an assistant turn's text and tool
// calls are one generation-free turn, so the loss mask comes from rendered prefixes.
const char* const kEchoTemplate =
    "{% for m in messages %}<{{ m.role }}>{% if m.content %}{{ m.content }}{% endif %}"
    "{% if m.tool_calls %}{% for c in m.tool_calls %}[call {{ c.function.name }} {{ c.function.arguments | tojson }}]"
    "{% endfor %}{% endif %}{% if m.role == 'tool' %}({{ m.tool_call_id }}){% endif %}</{{ m.role }}>{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}";

TEST(ToolTurns, TheReaderKeepsTheMessagesAsTheLineHasThem) {
  const TempDir dir;
  const std::string data = dir.write("d.jsonl", kToolLine + "\n");
  const auto examples = read_examples(data, {DataKind::kSft, false});
  ASSERT_EQ(examples.size(), 1u);
  const Example& ex = examples[0];
  ASSERT_EQ(ex.prompt.messages.size(), 3u);
  EXPECT_TRUE(ex.prompt.messages[0].json.is_null());  // plain: rebuilt from role and content
  const Message& call = ex.prompt.messages[1];
  EXPECT_EQ(call.role, "assistant");
  EXPECT_EQ(call.content, "");  // no content field
  EXPECT_EQ(call.json.dump(),
            R"({"role":"assistant","tool_calls":[{"type":"function","id":"c1","function":{"name":"get_weather",)"
            R"("arguments":{"city":"Paris","unit":"C"}}}]})");  // keys in the line's order
  EXPECT_EQ(ex.prompt.messages[2].role, "tool");
  EXPECT_EQ(ex.prompt.messages[2].content, R"({"temp": 21})");
  EXPECT_EQ(ex.prompt.messages[2].json["tool_call_id"], "c1");
  EXPECT_EQ(ex.completion->messages.at(0).content, "21 C and sunny.");
}

TEST(ToolTurns, NullValuedKeysAreDroppedAsTransformersDrops) {
  const TempDir dir;
  const std::string data = dir.write(
      "d.jsonl", R"({"messages": [{"role": "user", "content": "q", "name": null}, {"role": "assistant", "content": null, )"
                 R"("tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]}, )"
                 R"({"role": "tool", "content": "r", "name": null}, {"role": "assistant", "content": "a", "tool_calls": null}]})"
                 "\n");
  const auto examples = read_examples(data, {DataKind::kSft, false});
  const auto& m = examples[0].prompt.messages;
  EXPECT_TRUE(m[0].json.is_null());  // {role, content} once the null is dropped
  EXPECT_EQ(m[1].json.dump(), R"({"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f",)"
                              R"("arguments":"{}"}}]})");
  EXPECT_TRUE(m[2].json.is_null());  // {role, content} once the null name is dropped
  EXPECT_TRUE(examples[0].completion->messages[0].json.is_null());
  // A template sees no content (not None) and no tool calls where they were null.
  const ChatTemplate chat = ChatTemplate::from_jinja(
      "{% for m in messages %}{{ m.content is defined }}/{{ m.tool_calls is defined }} {% endfor %}", "", "", "t");
  std::vector<ChatMessage> all;
  for (const auto& x : m) all.push_back({x.role, x.content, x.json});
  all.push_back({"assistant", "a", examples[0].completion->messages[0].json});
  EXPECT_EQ(chat.render(all, false), "True/False False/True True/False True/False ");
}

TEST(ToolTurns, MalformedToolCallsAreDataErrorsNamingFileLineAndField) {
  const std::string user = R"({"role": "user", "content": "q"}, )";
  const std::string answer = R"(, {"role": "assistant", "content": "a"}]})";
  auto line = [&](const std::string& message) { return R"({"messages": [)" + user + message + answer; };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"role": "assistant", "tool_calls": {"name": "f"}})", "messages[1].tool_calls: expected a list of tool calls"},
      {R"({"role": "assistant", "tool_calls": ["f"]})", "messages[1].tool_calls[0]: expected a tool call"},
      {R"({"role": "assistant", "tool_calls": [{"type": "code", "function": {"name": "f", "arguments": {}}}]})",
       R"(messages[1].tool_calls[0].type: expected "function", got "code")"},
      {R"({"role": "assistant", "tool_calls": [{"type": "function", "name": "f"}]})",
       "messages[1].tool_calls[0].function: missing field"},
      {R"({"role": "assistant", "tool_calls": [{"function": {"arguments": {}}}]})",
       "messages[1].tool_calls[0].function.name: missing field"},
      {R"({"role": "assistant", "tool_calls": [{"function": {"name": "", "arguments": {}}}]})",
       "messages[1].tool_calls[0].function.name: expected a non-empty string"},
      {R"({"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]})",
       "messages[1].tool_calls[0].function.arguments: missing field"},
      {R"({"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": 3}}]})",
       "messages[1].tool_calls[0].function.arguments: expected an object or a JSON string, got 3"},
      {R"({"role": "assistant", "tool_calls": [{"id": 7, "function": {"name": "f", "arguments": "{}"}}]})",
       "messages[1].tool_calls[0].id: expected a string, got 7"},
      {R"({"role": "assistant", "content": 5, "tool_calls": [{"function": {"name": "f", "arguments": {}}}]})",
       "messages[1].content: expected a string or null"},
      {R"({"role": "assistant"})", "messages[1].content: expected a string"},
      {R"({"role": "user", "content": "x", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]})",
       "messages[1].tool_calls: only assistant messages make tool calls (this one is user's)"},
      {R"({"role": "tool", "content": "r", "tool_call_id": 1})", "messages[1].tool_call_id: expected a string, got 1"},
      {R"({"role": "tool", "content": "r", "name": 5})", "messages[1].name: expected a string, got 5"},
      {R"({"role": "tool"})", "messages[1].content: expected a string"},
      {R"({"role": "function", "content": "r"})",
       "messages[1].role: unknown role 'function' (expected system, user, assistant or tool)"},
  };
  std::string text;
  for (const auto& [message, error] : cases) text += line(message) + "\n";
  const TempDir dir;
  const std::string data = dir.write("bad.jsonl", text);
  try {
    read_examples(data, {DataKind::kSft, false});
    ADD_FAILURE() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), data + ":1: " + cases[0].second)) << e.what();
  }
  ReadReport report;
  EXPECT_THROW(read_examples(data, {DataKind::kSft, true}, &report), DataError);  // every line invalid
  EXPECT_EQ(report.skipped, static_cast<int64_t>(cases.size()));
  // Each line alone, for its own message.
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const std::string one = dir.write("one.jsonl", line(cases[i].first) + "\n");
    try {
      read_examples(one, {DataKind::kSft, false});
      ADD_FAILURE() << "expected DataError for " << cases[i].first;
    } catch (const DataError& e) {
      EXPECT_TRUE(contains(e.what(), one + ":1: " + cases[i].second)) << e.what();
    }
  }
}

TEST(ToolTurns, AJinjaTemplateReceivesTheMessagesJsonAndOnlyAssistantTurnsCarryLoss) {
  const TempDir dir;
  const std::string data = dir.write("d.jsonl", kToolLine + "\n");
  const std::string jinja = dir.write("t.jinja", kEchoTemplate);
  const auto examples = read_examples(data, {DataKind::kSft, false});
  const ByteTokenizer tokenizer;
  EncodeOptions options;
  options.keep_text = true;
  options.assistant_only_loss = true;
  const Encoder every(tokenizer, jinja, "", options);
  const auto e = every.encode_example(examples[0], *examples[0].completion, data);
  ASSERT_TRUE(e);
  const std::string call = R"([call get_weather {"city": "Paris", "unit": "C"}])";
  const std::string tool_result = R"(<tool>{"temp": 21}(c1)</tool>)";
  EXPECT_EQ(e->text, "<user>Weather in Paris?</user><assistant>" + call + "</assistant>" + tool_result +
                         "<assistant>21 C and sunny.</assistant>");
  // The loss: the tool call and the answer (each turn after its <assistant> opening), not the tool result.
  std::string trained;
  for (std::size_t i = 0; i < e->ids.size(); ++i) {
    if (e->loss_mask[i]) trained += tokenizer.decode({e->ids[i]});
  }
  EXPECT_EQ(trained, call + "</assistant>" + "21 C and sunny.</assistant>");
  // Last turn only: the prompt (tool call and result included) carries no loss.
  options.assistant_only_loss = false;
  const Encoder last(tokenizer, jinja, "", options);
  const auto l = last.encode_example(examples[0], *examples[0].completion, data);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->text, e->text);
  EXPECT_EQ(tokenizer.decode(std::vector<int32_t>(l->ids.begin() + l->prompt_len, l->ids.end())),
            "21 C and sunny.</assistant>");
}

TEST(ToolTurns, BuiltInTemplatesRefuseThemAndARecognisedModelTemplateRendersThem) {
  const TempDir dir;
  std::string line = kToolLine;
  line.erase(line.find(R"(, "tools")"));  // the tool turns alone, without a tools list
  const std::string data = dir.write("d.jsonl", line + "}\n");
  const auto examples = read_examples(data, {DataKind::kSft, false});
  const ByteTokenizer tokenizer;
  const Encoder builtin(tokenizer, "plain", "", {});
  try {
    builtin.encode_example(examples[0], *examples[0].completion, data);
    ADD_FAILURE() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), data + ":1: the built-in chat template plain renders no tool calls or tool "
                                          "results"))
        << e.what();
  }
  // A ChatML model template that aligntrain recognises as `chatml` renders tool turns through the Jinja engine.
  const TempDir model;
  model.write("tokenizer_config.json",
              nlohmann::json({{"chat_template",
                               "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
                               "{% for c in m.tool_calls or [] %}<tool_call>{{ c.function.name }}</tool_call>"
                               "{% endfor %}<|im_end|>\n{% endfor %}"
                               "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"}})
                  .dump());
  EXPECT_EQ(recognise_template(*read_chat_template(model.str())).name, "chatml");
  EncodeOptions options;
  options.keep_text = true;
  const Encoder encoder(tokenizer, "auto", model.str(), options);
  Text prompt = examples[0].prompt, response = *examples[0].completion;
  EXPECT_EQ(encoder.encode(prompt, response)->text,
            "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n<tool_call>get_weather</tool_call>"
            "<|im_end|>\n<|im_start|>tool\n{\"temp\": 21}<|im_end|>\n<|im_start|>assistant\n21 C and sunny.<|im_end|>\n");
}

}  // namespace
}  // namespace aligntrain::data
