// Unit tests for the byte-level tokenizer and for saving / loading it as a model directory.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "data/chat_template.h"
#include "data/tokenizer.h"
#include "data/tokenizer_byte.h"
#include "test/data/error_matchers.h"
#include "test/data/temp_dir.h"

namespace aligntrain::data {
namespace {

using testing::contains;
using testing::error_of;
using testing::TempDir;
using Ids = std::vector<int32_t>;

TEST(ByteTokenizer, BytesAreTheirOwnIds) {
  const ByteTokenizer tokenizer;
  EXPECT_EQ(tokenizer.encode("Hi!"), (Ids{72, 105, 33}));
  EXPECT_EQ(tokenizer.encode("é"), (Ids{0xC3, 0xA9}));
  EXPECT_EQ(tokenizer.encode(""), Ids{});
  EXPECT_EQ(tokenizer.vocab_size(), 261);
}

TEST(ByteTokenizer, SpecialTokensHaveFixedIds) {
  const ByteTokenizer tokenizer;
  EXPECT_EQ(tokenizer.bos_id(), 256);
  EXPECT_EQ(tokenizer.eos_id(), 257);
  EXPECT_EQ(tokenizer.pad_id(), 258);
  EXPECT_EQ(tokenizer.token_to_id("<|im_start|>"), 259);
  EXPECT_EQ(tokenizer.token_to_id("<|im_end|>"), 260);
  EXPECT_EQ(tokenizer.token_to_id("A"), 65);
  EXPECT_EQ(tokenizer.token_to_id("AB"), std::nullopt);
  EXPECT_EQ(tokenizer.id_to_token(257), "<|eos|>");
  EXPECT_EQ(tokenizer.id_to_token(65), "A");
  EXPECT_EQ(tokenizer.id_to_token(261), std::nullopt);
}

TEST(ByteTokenizer, SpecialTokenTextIsParsedByDefault) {
  const ByteTokenizer tokenizer;
  EXPECT_EQ(tokenizer.encode("a<|eos|>b"), (Ids{'a', 257, 'b'}));
  EXPECT_EQ(tokenizer.encode("<|im_start|>user\n"), (Ids{259, 'u', 's', 'e', 'r', '\n'}));
  EXPECT_EQ(tokenizer.encode("<|eos"), (Ids{'<', '|', 'e', 'o', 's'}));  // incomplete: plain bytes
}

TEST(ByteTokenizer, SpecialTokenTextCanBeKeptAsBytes) {
  const ByteTokenizer tokenizer(ByteTokenizer::SpecialTokensInText::kAsBytes);
  EXPECT_EQ(tokenizer.encode("<|eos|>").size(), 7u);
  EXPECT_EQ(tokenizer.decode(tokenizer.encode("<|eos|>")), "<|eos|>");
}

TEST(ByteTokenizer, DecodeRoundTripsAndCanSkipSpecials) {
  const ByteTokenizer tokenizer;
  const std::string text = "<|bos|>Hello, 世界 😀\n<|im_end|>";
  EXPECT_EQ(tokenizer.decode(tokenizer.encode(text)), text);
  EXPECT_EQ(tokenizer.decode(tokenizer.encode(text), /*skip_special=*/true), "Hello, 世界 😀\n");
}

TEST(ByteTokenizer, InvalidUtf8IsEncodedAsBytesAndDecodedAsReplacement) {
  const ByteTokenizer tokenizer;
  EXPECT_EQ(tokenizer.encode("a\xFF"), (Ids{'a', 0xFF}));
  EXPECT_EQ(tokenizer.decode({'a', 0xF0, 0x9F}), "a\xEF\xBF\xBD");
}

TEST(ByteTokenizer, DecodeRejectsIdsOutsideTheVocabulary) {
  const ByteTokenizer tokenizer;
  EXPECT_THROW(tokenizer.decode({261}), std::out_of_range);
  EXPECT_THROW(tokenizer.decode({-1}), std::out_of_range);
}

TEST(ByteTokenizer, SavedDirectoryLoadsBack) {
  const TempDir dir;
  save_byte_tokenizer(dir.str() + "/model");
  const auto tokenizer = load_tokenizer(dir.str() + "/model");
  EXPECT_EQ(tokenizer->vocab_size(), 261);
  EXPECT_EQ(tokenizer->eos_id(), 257);
  EXPECT_EQ(tokenizer->encode("x<|eos|>"), (Ids{'x', 257}));

  std::ifstream config_file(dir.path() / "model" / "tokenizer_config.json");
  const auto config = nlohmann::json::parse(config_file);
  EXPECT_EQ(config["bos_token"], "<|bos|>");
  EXPECT_EQ(config["eos_token"], "<|eos|>");
  EXPECT_EQ(config["pad_token"], "<|pad|>");
  EXPECT_EQ(config["additional_special_tokens"], nlohmann::json({"<|im_start|>", "<|im_end|>"}));
  const auto chat_template = read_chat_template(dir.str() + "/model");
  ASSERT_TRUE(chat_template.has_value());
  EXPECT_EQ(recognise_template(*chat_template).name, "plain");
}

TEST(ByteTokenizer, UnknownTypeOrFieldIsAnError) {
  const TempDir dir;
  dir.write("aligntrain_tokenizer.json", R"({"type": "sentencepiece"})");
  std::string error = error_of([&] { load_tokenizer(dir.str()); });
  EXPECT_TRUE(contains(error, "aligntrain_tokenizer.json")) << error;
  EXPECT_TRUE(contains(error, "'type'")) << error;
  dir.write("aligntrain_tokenizer.json", R"({"type": "byte", "vocab": 300})");
  error = error_of([&] { load_tokenizer(dir.str()); });
  EXPECT_TRUE(contains(error, "'vocab': unknown field")) << error;
}

}  // namespace
}  // namespace aligntrain::data
