// SentencePiece-style BPE (data/tokenizer_spm_bpe.h, tokenizer_sentencepiece.h) on hand-built tokenizer.json files:
// the byte-fallback / unknown-token rules of the tokenizers library, the Metaspace and decoder steps, and every
// unsupported option refused with an error that names the field. (Parity on real-sized tokenizers is
// spm_tokenizer_parity_test.)
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "data/tokenizer.h"
#include "data/tokenizer_spm_bpe.h"
#include "test/data/error_matchers.h"
#include "test/data/temp_dir.h"

namespace aligntrain::data {
namespace {

using nlohmann::json;
using testing::contains;
using testing::error_of;

const std::string kSpace = "\xE2\x96\x81";

// A Mistral-shaped tokenizer.json: <unk> <s> </s>, byte tokens for 0x0A, 0xC3 and 0xA9 only, a few pieces.
json make_spec() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}, {"<0x0A>", 3}, {"<0xC3>", 4}, {"<0xA9>", 5},
                {kSpace, 6},  {"a", 7},   {"b", 8},    {kSpace + "a", 9}, {"ab", 10}, {kSpace + "ab", 11}};
  return {{"version", "1.0"},
          {"added_tokens", json::array({{{"id", 0}, {"content", "<unk>"}, {"single_word", false}, {"lstrip", false},
                                         {"rstrip", false}, {"normalized", false}, {"special", true}},
                                        {{"id", 1}, {"content", "<s>"}, {"single_word", false}, {"lstrip", false},
                                         {"rstrip", false}, {"normalized", false}, {"special", true}}})},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", kSpace}, {"prepend_scheme", "first"},
                             {"split", false}}},
          {"post_processor", nullptr},
          {"decoder", {{"type", "Sequence"}, {"decoders", json::array({
                          {{"type", "Replace"}, {"pattern", {{"String", kSpace}}}, {"content", " "}},
                          {{"type", "ByteFallback"}}, {{"type", "Fuse"}},
                          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}}},
          {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", "<unk>"}, {"fuse_unk", true},
                     {"byte_fallback", true}, {"ignore_merges", false}, {"vocab", vocab},
                     {"merges", json::array({json::array({kSpace, "a"}), json::array({"a", "b"}),
                                             json::array({kSpace + "a", "b"})})}}}};
}

std::vector<int32_t> ids_of(const json& spec, const std::string& text) {
  return SpmBpeTokenizer(spec, "tokenizer.json").encode(text);
}

std::string error_for(const json& spec) {
  return error_of([&] { SpmBpeTokenizer(spec, "tokenizer.json"); });
}

TEST(SpmBpeTokenizer, MergesAndMetaspaceFirst) {
  EXPECT_EQ(ids_of(make_spec(), "ab a"), (std::vector<int32_t>{11, 9}));
  EXPECT_EQ(ids_of(make_spec(), "<s>ab"), (std::vector<int32_t>{1, 10}));  // only the input's start gets ▁
}

TEST(SpmBpeTokenizer, ByteFallbackAndUnknownCharacters) {
  // é is <0xC3><0xA9>; \n is <0x0A>; z has no token and no complete byte tokens: <unk>, runs fused.
  EXPECT_EQ(ids_of(make_spec(), "a\xC3\xA9\n"), (std::vector<int32_t>{9, 4, 5, 3}));
  EXPECT_EQ(ids_of(make_spec(), "azzb"), (std::vector<int32_t>{9, 0, 8}));
  json unfused = make_spec();
  unfused["model"]["fuse_unk"] = false;
  EXPECT_EQ(ids_of(unfused, "azzb"), (std::vector<int32_t>{9, 0, 0, 8}));
  // As the library: byte tokens of a character that follows an unknown one come before the pending <unk>.
  EXPECT_EQ(ids_of(make_spec(), "az\n"), (std::vector<int32_t>{9, 3, 0}));
}

TEST(SpmBpeTokenizer, DecodesBytesAndStripsTheFirstSpace) {
  const SpmBpeTokenizer tokenizer(make_spec(), "tokenizer.json");
  EXPECT_EQ(tokenizer.decode({11, 4, 5, 3, 9}), "ab\xC3\xA9\n a");
  EXPECT_EQ(tokenizer.decode({4, 9}), "\xEF\xBF\xBD a");  // a lone <0xC3>: one U+FFFD per byte token
  EXPECT_EQ(tokenizer.decode({1, 11}, true), "ab");
}

TEST(SpmBpeTokenizer, AddedTokenIdsAreAssignedAsTheLibraryDoes) {
  json spec = make_spec();
  spec["added_tokens"].push_back(spec["added_tokens"][1]);  // a duplicate: ignored
  json extra = spec["added_tokens"][1];
  extra["content"] = "<x>";
  extra["id"] = 99;  // not in the vocabulary: takes the next id after the 12 entries, whatever the file says
  spec["added_tokens"].push_back(extra);
  const SpmBpeTokenizer tokenizer(spec, "tokenizer.json");
  EXPECT_EQ(tokenizer.token_to_id("<s>"), 1);
  EXPECT_EQ(tokenizer.token_to_id("<x>"), 12);
  EXPECT_EQ(tokenizer.vocab_size(), 13);
  EXPECT_EQ(tokenizer.encode("<x><s>a"), (std::vector<int32_t>{12, 1, 7}));
}

TEST(SpmBpeTokenizer, NfkcNormalizerFoldsCompatibilityCharactersBeforeTheModel) {
  json spec = make_spec();
  spec["normalizer"] = {{"type", "Sequence"}, {"normalizers", json::array({{{"type", "NFKC"}}})}};
  // Full-width ａｂ, the ligature-free "ab" and a superscript-free "a": all the same pieces as plain ASCII.
  EXPECT_EQ(ids_of(spec, "ａｂ ａ"), (std::vector<int32_t>{11, 9}));
  EXPECT_EQ(ids_of(spec, "é"), (std::vector<int32_t>{6, 4, 5}));  // é stays composed: bytes C3 A9
  spec["normalizer"] = {{"type", "NFKD"}};
  EXPECT_EQ(ids_of(spec, "ａ"), (std::vector<int32_t>{9}));
  EXPECT_EQ(ids_of(make_spec(), "ａ"), (std::vector<int32_t>{6, 0}));  // without it: not in the vocabulary
}

TEST(SpmBpeTokenizer, UnsupportedOptionsNameTheirField) {
  json spec = make_spec();
  spec["normalizer"] = {{"type", "Lowercase"}};
  EXPECT_TRUE(contains(error_for(spec), "field 'normalizer.type'")) << error_for(spec);
  EXPECT_TRUE(contains(error_for(spec), "Lowercase")) << error_for(spec);
  spec = make_spec();
  spec["normalizer"] = {{"type", "Sequence"}, {"normalizers", json::array({{{"type", "Replace"},
                         {"pattern", {{"Regex", " +"}}}, {"content", kSpace}}})}};
  EXPECT_TRUE(contains(error_for(spec), "field 'normalizer.normalizers[0].pattern'")) << error_for(spec);
  spec = make_spec();
  spec["pre_tokenizer"]["prepend_scheme"] = "sometimes";
  EXPECT_TRUE(contains(error_for(spec), "field 'pre_tokenizer.prepend_scheme'")) << error_for(spec);
  spec = make_spec();
  spec["pre_tokenizer"] = {{"type", "Whitespace"}};
  EXPECT_TRUE(contains(error_for(spec), "field 'pre_tokenizer.type'")) << error_for(spec);
  spec = make_spec();
  spec["decoder"]["decoders"][1] = {{"type", "WordPiece"}};
  EXPECT_TRUE(contains(error_for(spec), "field 'decoder.decoders[1].type'")) << error_for(spec);
  spec = make_spec();
  spec["post_processor"] = {{"type", "BertProcessing"}};
  EXPECT_TRUE(contains(error_for(spec), "field 'post_processor.type'")) << error_for(spec);
  spec = make_spec();
  spec["model"]["dropout"] = 0.1;
  EXPECT_TRUE(contains(error_for(spec), "field 'model.dropout'")) << error_for(spec);
  spec = make_spec();
  spec["model"]["vocab"]["huge"] = 1 << 30;
  EXPECT_TRUE(contains(error_for(spec), "field 'model.vocab.huge'")) << error_for(spec);
}

TEST(SpmBpeTokenizer, TemplateProcessingAddsBosAndEos) {
  json spec = make_spec();
  spec["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
      {"pair", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                            {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                            {{"Sequence", {{"id", "B"}, {"type_id", 1}}}},
                            {{"SpecialToken", {{"id", "</s>"}, {"type_id", 1}}}}})},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}},
                          {"</s>", {{"id", "</s>"}, {"ids", {2}}, {"tokens", {"</s>"}}}}}}};
  const SpmBpeTokenizer tokenizer(spec, "tokenizer.json");
  const std::vector<int32_t> a{7}, b{8};
  EXPECT_EQ(tokenizer.add_special_tokens(a), (std::vector<int32_t>{1, 7}));
  EXPECT_EQ(tokenizer.add_special_tokens(a, &b), (std::vector<int32_t>{1, 7, 8, 2}));
  spec["post_processor"]["special_tokens"].erase("</s>");
  EXPECT_TRUE(contains(error_for(spec), "post_processor.special_tokens")) << error_for(spec);
}

TEST(SentencePieceFolder, ABrokenModelFileIsADataErrorNamingIt) {
  testing::TempDir dir;
  std::ofstream(dir.path() / "tokenizer.model") << "not a protobuf";
  try {
    load_tokenizer(dir.str());
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "tokenizer.model")) << e.what();
  }
}

}  // namespace
}  // namespace aligntrain::data
