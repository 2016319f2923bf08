// Unit tests for byte-level BPE from tokenizer.json: the merge order, pre-tokenization, ignore_merges, added
// tokens and their options, NFC, invalid UTF-8, thread safety, errors that name the file and the field for
// malformed or unsupported files, and the special tokens load_tokenizer reads from a model directory. The
// tokenizer.json files are small hand-made ones; tokenizer_parity_check covers real trained ones.
#include <gtest/gtest.h>

#include <thread>

#include <nlohmann/json.hpp>

#include "data/tokenizer.h"
#include "data/tokenizer_bpe.h"
#include "data/tokenizer_byte_level.h"
#include "test/data/error_matchers.h"
#include "test/data/temp_dir.h"

namespace aligntrain::data {
namespace {

using nlohmann::json;
using testing::contains;
using testing::error_of;
using testing::TempDir;
using Ids = std::vector<int32_t>;

constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

json byte_level(bool add_prefix_space, bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"trim_offsets", true},
          {"use_regex", use_regex}};
}

json added_token(int id, const std::string& content, bool special, json options = json::object()) {
  json token = {{"id", id},         {"content", content}, {"single_word", false}, {"lstrip", false},
                {"rstrip", false},  {"normalized", false}, {"special", special}};
  token.update(options);
  return token;
}

// A GPT-2 style tokenizer.json: the 256 byte characters as ids 0..255 (id = byte value), then one token per
// merge (raw text, in rank order), then `extra` whole tokens reachable by no merge.
json make_spec(const std::vector<std::pair<std::string, std::string>>& merges,
               const std::vector<std::string>& extra = {}) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level_char(static_cast<uint8_t>(b))] = b;
  json merge_list = json::array();
  const auto add = [&](const std::string& text) {
    const std::string token = to_byte_level(text);
    if (!vocab.contains(token)) vocab[token] = static_cast<int>(vocab.size());
  };
  for (const auto& [left, right] : merges) {
    merge_list.push_back({to_byte_level(left), to_byte_level(right)});
    add(left + right);
  }
  for (const std::string& text : extra) add(text);
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", byte_level(false, true)},
          {"post_processor", nullptr},
          {"decoder", byte_level(true, true)},
          {"model",
           {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
            {"ignore_merges", false}, {"vocab", vocab}, {"merges", merge_list}}}};
}

int32_t id_of(const BpeTokenizer& tokenizer, const std::string& text) {
  return tokenizer.token_to_id(to_byte_level(text)).value();
}

std::string load_error(const json& spec) {
  return error_of([&] { BpeTokenizer(spec, "tokenizer.json"); });
}

TEST(BpeTokenizer, LowestRankedPairMergesFirst) {
  const BpeTokenizer tokenizer(make_spec({{"b", "c"}, {"a", "b"}}), "test");
  EXPECT_EQ(tokenizer.encode("abc"), (Ids{'a', id_of(tokenizer, "bc")}));
}

TEST(BpeTokenizer, LeftmostPairWinsAmongEquals) {
  const BpeTokenizer tokenizer(make_spec({{"a", "a"}}), "test");
  EXPECT_EQ(tokenizer.encode("aaa"), (Ids{id_of(tokenizer, "aa"), 'a'}));
  EXPECT_EQ(tokenizer.encode("aaaa"), (Ids{id_of(tokenizer, "aa"), id_of(tokenizer, "aa")}));
}

TEST(BpeTokenizer, MergesChainIntoWholeWords) {
  const BpeTokenizer tokenizer(make_spec({{"l", "l"}, {"h", "e"}, {"he", "ll"}, {"hell", "o"}}), "test");
  EXPECT_EQ(tokenizer.encode("hello"), (Ids{id_of(tokenizer, "hello")}));
  EXPECT_EQ(tokenizer.decode(tokenizer.encode("hello")), "hello");
}

TEST(BpeTokenizer, MergesNeverCrossPreTokens) {
  const BpeTokenizer tokenizer(make_spec({{"o", " "}}), "test");
  EXPECT_EQ(tokenizer.encode("o w"), (Ids{'o', ' ', 'w'}));  // GPT-2 pre-tokens: "o", " w"
}

TEST(BpeTokenizer, LegacyStringMergesAreRead) {
  json spec = make_spec({{"a", "b"}});
  spec["model"]["merges"] = {"a b"};
  const BpeTokenizer tokenizer(spec, "test");
  EXPECT_EQ(tokenizer.encode("ab"), (Ids{id_of(tokenizer, "ab")}));
}

TEST(BpeTokenizer, IgnoreMergesEmitsWholeVocabularyWords) {
  json spec = make_spec({}, {"xyz"});
  EXPECT_EQ(BpeTokenizer(spec, "test").encode("xyz"), (Ids{'x', 'y', 'z'}));
  spec["model"]["ignore_merges"] = true;
  const BpeTokenizer tokenizer(spec, "test");
  EXPECT_EQ(tokenizer.encode("xyz"), (Ids{id_of(tokenizer, "xyz")}));
}

TEST(BpeTokenizer, PrefixSpaceIsAddedToEachPiece) {
  json spec = make_spec({});
  spec["pre_tokenizer"] = byte_level(true, true);
  spec["added_tokens"] = {added_token(300, "<|x|>", true)};
  const BpeTokenizer tokenizer(spec, "test");
  EXPECT_EQ(tokenizer.encode("hi"), (Ids{' ', 'h', 'i'}));
  EXPECT_EQ(tokenizer.encode(" hi"), (Ids{' ', 'h', 'i'}));
  EXPECT_EQ(tokenizer.encode("a<|x|>b"), (Ids{' ', 'a', 300, ' ', 'b'}));
}

TEST(BpeTokenizer, SplitSequencePreTokenizer) {
  json spec = make_spec({{"1", "2"}, {"12", "3"}, {"4", "5"}});
  spec["pre_tokenizer"] = {{"type", "Sequence"},
                           {"pretokenizers",
                            {{{"type", "Split"}, {"pattern", {{"Regex", kLlama3Pattern}}}, {"behavior", "Isolated"},
                              {"invert", false}},
                             byte_level(false, false)}}};
  const BpeTokenizer tokenizer(spec, "test");
  EXPECT_EQ(tokenizer.encode("12345"), (Ids{id_of(tokenizer, "123"), id_of(tokenizer, "45")}));  // \p{N}{1,3}
}

TEST(BpeTokenizer, AddedTokensAreCutOutFirst) {
  json spec = make_spec({{"a", "<"}});
  spec["added_tokens"] = {added_token(300, "<|end|>", true), added_token(301, "<|end|>x", false)};
  const BpeTokenizer tokenizer(spec, "test");
  EXPECT_EQ(tokenizer.encode("a<|end|>b"), (Ids{'a', 300, 'b'}));
  EXPECT_EQ(tokenizer.encode("<|end|>xy"), (Ids{301, 'y'}));  // the longest match wins
  EXPECT_EQ(tokenizer.decode({'a', 300, 'b'}), "a<|end|>b");
  EXPECT_EQ(tokenizer.decode({'a', 300, 301}, /*skip_special=*/true), "a<|end|>x");
  EXPECT_EQ(tokenizer.vocab_size(), 302);
  EXPECT_EQ(tokenizer.token_to_id("<|end|>"), 300);
  EXPECT_EQ(tokenizer.id_to_token(301), "<|end|>x");
}

TEST(BpeTokenizer, AddedTokenOptions) {
  json spec = make_spec({});
  spec["added_tokens"] = {added_token(300, "<mask>", true, {{"lstrip", true}}),
                          added_token(301, "[SEP]", true, {{"rstrip", true}}),
                          added_token(302, "wiki", false, {{"single_word", true}}),
                          added_token(303, "a b", false)};
  const BpeTokenizer tokenizer(spec, "test");
  EXPECT_EQ(tokenizer.encode("x  <mask>y"), (Ids{'x', 300, 'y'}));
  EXPECT_EQ(tokenizer.encode("[SEP]  y"), (Ids{301, 'y'}));
  EXPECT_EQ(tokenizer.encode("a wiki."), (Ids{'a', ' ', 302, '.'}));
  EXPECT_EQ(tokenizer.encode("wikis"), (Ids{'w', 'i', 'k', 'i', 's'}));
  EXPECT_EQ(tokenizer.decode({303}), "a b");  // not byte-level text: decoded as it is
}

TEST(BpeTokenizer, NfcNormalizerAppliesBeforeNormalizedAddedTokens) {
  json spec = make_spec({});
  spec["normalizer"] = {{"type", "NFC"}};
  spec["added_tokens"] = {added_token(300, "caf\u00e9", false, {{"normalized", true}})};
  const BpeTokenizer tokenizer(spec, "test");
  EXPECT_EQ(tokenizer.encode("cafe\u0301"), (Ids{300}));
  EXPECT_EQ(tokenizer.encode("e\u0301"), tokenizer.encode("\u00e9"));
}

TEST(BpeTokenizer, InvalidUtf8IsEncodedAsItsLossyDecoding) {
  const BpeTokenizer tokenizer(make_spec({}), "test");
  EXPECT_EQ(tokenizer.encode("a\xFF\xF0\x9F" "b"), tokenizer.encode("a\uFFFD\uFFFDb"));
  EXPECT_EQ(tokenizer.decode({'a', 0xF0, 0x9F}), "a\uFFFD");
}

TEST(BpeTokenizer, DecodeRejectsIdsWithoutToken) {
  const BpeTokenizer tokenizer(make_spec({}), "test");
  EXPECT_THROW(tokenizer.decode({256}), std::out_of_range);
  EXPECT_THROW(tokenizer.decode({-1}), std::out_of_range);
}

TEST(BpeTokenizer, ConcurrentEncodesAgree) {
  const BpeTokenizer tokenizer(make_spec({{"t", "h"}, {"th", "e"}, {" ", "the"}}), "test");
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "the cat " + std::to_string(i) + " sat on the mat. ";
  const Ids expected = tokenizer.encode(text);
  std::vector<Ids> results(4);
  std::vector<std::thread> threads;
  for (auto& result : results) threads.emplace_back([&] { result = tokenizer.encode(text); });
  for (auto& thread : threads) thread.join();
  for (const Ids& result : results) EXPECT_EQ(result, expected);
}

TEST(BpeTokenizer, LongInputs) {
  const BpeTokenizer tokenizer(make_spec({{" ", " "}, {"  ", "  "}, {"a", "a"}}), "test");
  for (const std::string& text : {std::string(200000, ' '), std::string(100000, 'a'), std::string(50000, '\n')}) {
    EXPECT_EQ(tokenizer.decode(tokenizer.encode(text)), text);
  }
}

TEST(BpeTokenizerErrors, NameTheFileAndTheField) {
  const auto expect_error = [](const json& spec, const std::string& field, const std::string& what) {
    const std::string error = load_error(spec);
    EXPECT_TRUE(contains(error, "tokenizer.json: field '" + field + "'")) << error;
    EXPECT_TRUE(contains(error, what)) << error;
  };
  json spec = make_spec({{"a", "b"}});
  json bad = spec;
  bad.erase("model");
  expect_error(bad, "model", "missing");
  bad = spec, bad["model"]["type"] = "WordPiece";
  expect_error(bad, "model.type", "only \"BPE\"");
  bad = spec, bad["model"]["merges"] = json::array({json::array({"a", "q!"})});
  expect_error(bad, "model.merges[0]", "'q!' is not in the vocabulary");
  bad = spec, bad["model"]["merges"] = {"ab"};
  expect_error(bad, "model.merges[0]", "one space");
  bad = spec, bad["model"]["merges"] = {7};
  expect_error(bad, "model.merges[0]", "expected");
  bad = spec, bad["model"]["vocab"]["a"] = "x";
  expect_error(bad, "model.vocab.a", "expected an integer");
  bad = spec, bad["model"]["dropout"] = 0.1;
  expect_error(bad, "model.dropout", "not supported");
  bad = spec, bad["model"]["byte_fallback"] = true;
  expect_error(bad, "model.byte_fallback", "not supported");
  bad = spec, bad["model"]["continuing_subword_prefix"] = "##";
  expect_error(bad, "model.continuing_subword_prefix", "not supported");
  bad = spec, bad["model"]["unk_token"] = "<unk>";
  expect_error(bad, "model.unk_token", "not in the vocabulary");
  bad = spec, bad["normalizer"] = {{"type", "Lowercase"}};
  expect_error(bad, "normalizer.type", "unsupported normalizer 'Lowercase'");
  bad = spec, bad["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_error(bad, "pre_tokenizer.type", "unsupported pre-tokenizer 'Whitespace'");
  bad = spec, bad["pre_tokenizer"] = nullptr;
  expect_error(bad, "pre_tokenizer", "expected an object");
  bad = spec, bad["decoder"] = {{"type", "WordPiece"}};
  expect_error(bad, "decoder.type", "unsupported decoder");
  bad = spec, bad["decoder"] = nullptr;
  expect_error(bad, "decoder", "null decoder");
  bad = spec, bad["added_tokens"] = {added_token(300, "<x>", true), added_token(301, "<x>", true)};
  expect_error(bad, "added_tokens[1]", "same text");
  bad = spec, bad["added_tokens"] = {{{"content", "<x>"}}};
  expect_error(bad, "added_tokens[0].id", "missing");
}

TEST(BpeTokenizerErrors, UnsupportedPreTokenizerSteps) {
  const auto sequence = [](json split) {
    json spec = make_spec({});
    spec["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {split, byte_level(false, false)}}};
    return spec;
  };
  const json split = {{"type", "Split"}, {"pattern", {{"Regex", "\\s+"}}}, {"behavior", "Isolated"}, {"invert", false}};
  json bad = split;
  bad["behavior"] = "Removed";
  EXPECT_TRUE(contains(load_error(sequence(bad)), "field 'pre_tokenizer.pretokenizers[0].behavior'"));
  bad = split, bad["invert"] = true;
  EXPECT_TRUE(contains(load_error(sequence(bad)), "field 'pre_tokenizer.pretokenizers[0].invert'"));
  bad = split, bad["pattern"] = {{"Regex", "(unclosed"}};
  EXPECT_TRUE(contains(load_error(sequence(bad)), "field 'pre_tokenizer.pretokenizers[0].pattern.Regex'"));
  bad = split, bad["pattern"] = {{"Regex", "\\w+"}};
  EXPECT_TRUE(contains(load_error(sequence(bad)), "Oniguruma and PCRE2"));
  bad = {{"type", "Digits"}, {"individual_digits", true}};
  EXPECT_TRUE(contains(load_error(sequence(bad)), "unsupported step 'Digits'"));
  json spec = make_spec({});
  spec["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {split}}};
  EXPECT_TRUE(contains(load_error(spec), "must end with ByteLevel"));
  bad = split, bad["pattern"] = {{"String", "("}};
  EXPECT_EQ(load_error(sequence(bad)), "(no exception)");  // a literal pattern
}

TEST(BpeTokenizerErrors, FileProblemsNameTheFile) {
  const TempDir dir;
  const std::string path = dir.write("tokenizer.json", "{not json");
  std::string error = error_of([&] { BpeTokenizer::from_file(path); });
  EXPECT_TRUE(contains(error, path + ": not valid JSON")) << error;
  error = error_of([&] { BpeTokenizer::from_file(dir.str() + "/absent.json"); });
  EXPECT_TRUE(contains(error, "absent.json: cannot open file")) << error;
  error = error_of([&] { load_tokenizer(dir.str() + "/nothing-here"); });
  EXPECT_TRUE(contains(error, "expected tokenizer.json (Hugging Face), tokenizer.model (SentencePiece) or "
                              "aligntrain_tokenizer.json"))
      << error;
}

class LoadTokenizer : public ::testing::Test {
 protected:
  void SetUp() override {
    json spec = make_spec({});
    spec["added_tokens"] = {added_token(256, "<s>", true), added_token(257, "</s>", true),
                            added_token(258, "<pad>", true)};
    dir_.write("tokenizer.json", spec.dump());
  }
  TempDir dir_;
};

TEST_F(LoadTokenizer, SpecialTokensFromStringsAndAddedTokenObjects) {
  dir_.write("tokenizer_config.json",
             R"({"bos_token": "<s>", "eos_token": {"__type": "AddedToken", "content": "</s>"}, "pad_token": null})");
  const auto tokenizer = load_tokenizer(dir_.str());
  EXPECT_EQ(tokenizer->bos_id(), 256);
  EXPECT_EQ(tokenizer->eos_id(), 257);
  EXPECT_EQ(tokenizer->pad_id(), std::nullopt);
}

TEST_F(LoadTokenizer, GenerationConfigFillsWhatTokenizerConfigLeavesOpen) {
  dir_.write("tokenizer_config.json", R"({"eos_token": "</s>"})");
  dir_.write("generation_config.json", R"({"bos_token_id": 256, "eos_token_id": [258, 257], "pad_token_id": 258})");
  const auto tokenizer = load_tokenizer(dir_.str());
  EXPECT_EQ(tokenizer->bos_id(), 256);
  EXPECT_EQ(tokenizer->eos_id(), 257);  // tokenizer_config.json wins
  EXPECT_EQ(tokenizer->pad_id(), 258);
}

TEST_F(LoadTokenizer, UnknownSpecialTokensAreErrors) {
  dir_.write("tokenizer_config.json", R"({"bos_token": "<bos>"})");
  std::string error = error_of([&] { load_tokenizer(dir_.str()); });
  EXPECT_TRUE(contains(error, "tokenizer_config.json: field 'bos_token': '<bos>' is not a token")) << error;
  dir_.write("tokenizer_config.json", R"({"eos_token": {"id": 3}})");
  error = error_of([&] { load_tokenizer(dir_.str()); });
  EXPECT_TRUE(contains(error, "field 'eos_token.content': missing")) << error;
  dir_.write("tokenizer_config.json", "{}");
  dir_.write("generation_config.json", R"({"eos_token_id": 5000})");
  error = error_of([&] { load_tokenizer(dir_.str()); });
  EXPECT_TRUE(contains(error, "generation_config.json: field 'eos_token_id': id 5000 is outside")) << error;
}

}  // namespace
}  // namespace aligntrain::data
