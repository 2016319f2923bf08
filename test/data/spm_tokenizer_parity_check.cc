// Parity of aligntrain's SentencePiece-style tokenizers (tokenizer.json with Metaspace / byte_fallback, and
// tokenizer.model folders) with the Hugging Face libraries, on the fixtures that scripts/make_spm_test_tokenizer.py
// writes into $ALIGNTRAIN_SPM_FIXTURES (spm_tokenizer_parity_test.sh makes them and runs this): for every test
// string and every variant, identical ids (without and with special tokens, and for pairs), and identical decodes
// of those ids (decode(encode(s)) as Hugging Face decodes it), with and without special tokens.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "data/tokenizer.h"
#include "data/tokenizer_unicode.h"

namespace aligntrain::data {
namespace {

using nlohmann::json;

std::string fixtures() {
  const char* dir = std::getenv("ALIGNTRAIN_SPM_FIXTURES");
  if (dir == nullptr) throw std::runtime_error("ALIGNTRAIN_SPM_FIXTURES is not set (run spm_tokenizer_parity_test.sh)");
  return dir;
}

std::vector<json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  return lines;
}

std::string from_hex(const std::string& hex) {
  std::string bytes;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) bytes += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return bytes;
}

std::string case_text(const json& c) { return c.contains("text") ? c["text"].get<std::string>() : from_hex(c["bytes_hex"]); }

std::string shown(const std::string& text) {
  std::string out = json(to_valid_utf8(text)).dump();
  return out.size() > 200 ? out.substr(0, 200) + "...\"" : out;
}

class SpmTokenizerParity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::ifstream in(fixtures() + "/manifest.json");
    manifest_ = json::parse(in);
    cases_ = read_jsonl(fixtures() + "/cases.jsonl");
  }
  static json manifest_;
  static std::vector<json> cases_;
};
json SpmTokenizerParity::manifest_;
std::vector<json> SpmTokenizerParity::cases_;

TEST_F(SpmTokenizerParity, FixturesAreLargeEnough) {
  EXPECT_GE(manifest_["strings"].get<int>(), 2000);
  EXPECT_EQ(cases_.size(), manifest_["strings"].get<std::size_t>() + manifest_["invalid_utf8"].get<std::size_t>());
  EXPECT_GE(manifest_["variants"].size(), 7u);
}

TEST_F(SpmTokenizerParity, IdsAndDecodesMatchHuggingFace) {
  for (const std::string variant : manifest_["variants"]) {
    std::unique_ptr<Tokenizer> tokenizer;
    try {
      tokenizer = load_tokenizer(fixtures() + "/" + variant);
    } catch (const std::exception& e) {
      ADD_FAILURE() << variant << ": " << e.what();
      continue;
    }
    EXPECT_EQ(tokenizer->vocab_size(), manifest_["vocab_sizes"][variant].get<int>()) << variant;
    int ids_equal = 0, decodes_equal = 0, failures = 0, pairs = 0;
    for (std::size_t line = 0; line < cases_.size(); ++line) {
      const json& expected = cases_[line][variant];
      const std::string text = case_text(cases_[line]);
      const std::vector<int32_t> ids = tokenizer->encode(text);
      const std::vector<int32_t> expected_ids = expected["ids"];
      bool same_ids = ids == expected_ids &&
                      tokenizer->add_special_tokens(ids) == expected["ids_special"].get<std::vector<int32_t>>();
      if (expected.contains("pair")) {
        const std::vector<int32_t> b = tokenizer->encode(case_text(cases_[(line + 1) % cases_.size()]));
        same_ids = same_ids && tokenizer->add_special_tokens(ids, &b) == expected["pair"].get<std::vector<int32_t>>();
        ++pairs;
      }
      const std::string decoded = tokenizer->decode(expected_ids);
      const std::string decoded_skip = tokenizer->decode(expected_ids, true);
      const bool same_decodes = decoded == expected["decoded"].get<std::string>() &&
                                decoded_skip == expected["decoded_skip"].get<std::string>();
      ids_equal += same_ids;
      decodes_equal += same_decodes;
      if ((!same_ids || !same_decodes) && ++failures <= 8) {
        ADD_FAILURE() << variant << " cases.jsonl line " << line + 1 << " text " << shown(text) << "\n  expected ids "
                      << expected["ids"].dump() << "\n  got      ids " << json(ids).dump() << "\n  with specials "
                      << expected["ids_special"].dump() << " / " << json(tokenizer->add_special_tokens(ids)).dump()
                      << "\n  pair " << (expected.contains("pair") ? expected["pair"].dump() : "-")
                      << "\n  expected decode " << expected["decoded"].dump() << " / " << expected["decoded_skip"].dump()
                      << "\n  got      decode " << json(decoded).dump() << " / " << json(decoded_skip).dump();
      }
    }
    std::printf("%-17s %d/%zu strings with identical ids (%d pairs), %d/%zu identical decodes\n", variant.c_str(),
                ids_equal, cases_.size(), pairs, decodes_equal, cases_.size());
    EXPECT_EQ(ids_equal, static_cast<int>(cases_.size())) << variant;
    EXPECT_EQ(decodes_equal, static_cast<int>(cases_.size())) << variant;
  }
}

TEST_F(SpmTokenizerParity, UnsupportedTokenizerModelFoldersAreDataErrorsNamingTheFieldOrFile) {
  std::ifstream in(fixtures() + "/errors/errors.json");
  const json cases = json::parse(in);
  ASSERT_GE(cases.size(), 4u);
  for (const auto& [name, expected] : cases.items()) {
    try {
      load_tokenizer(fixtures() + "/errors/" + name);
      ADD_FAILURE() << name << ": loaded";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(expected.get<std::string>()), std::string::npos) << name << ": " << e.what();
    }
  }
}

}  // namespace
}  // namespace aligntrain::data
