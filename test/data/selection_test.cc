// //data:selection: ZIP-FIT's gzip sizes and alignment against METHODS.md §E.1's worked vectors, thread counts
// that change nothing, top-K ordering and ties, and the text an example is compared by (select.text).
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "common/errors.h"
#include "data/select_text.h"
#include "data/zip_fit.h"
#include "test/data/error_matchers.h"
#include "test/data/temp_dir.h"

namespace aligntrain::data {
namespace {

using testing::contains;
using testing::error_of;

const std::string kAdd = "def add(a, b):\n    return a + b\n";
const std::string kSub = "def sub(a, b):\n    return a - b\n";
const std::string kMul = "def mul(a, b):\n    return a * b\n";
const std::string kFox = "The quick brown fox jumps over the lazy dog.";

TEST(ZipFit, GzipSizesIncludeTheWrapperAsPythonsGzipCompress) {
  GzipSizer gz;
  EXPECT_EQ(gz.size(kAdd), 50u);  // METHODS.md E.1: sizes (50, 50, 61) and (63, 50, 92)
  EXPECT_EQ(gz.size(kSub), 50u);
  EXPECT_EQ(gz.size(kAdd, kSub), 61u);
  EXPECT_EQ(gz.size(kFox), 63u);
  EXPECT_EQ(gz.size(kFox, kSub), 92u);
  EXPECT_EQ(gz.size(""), 20u);  // header, an empty final block, trailer
  EXPECT_EQ(gz.size(kAdd + kSub), gz.size(kAdd, kSub));
}

TEST(ZipFit, AlignmentOfTheWorkedVectors) {
  const auto align = zip_fit_align({kAdd, kFox}, {kSub, kMul}, {0, 1}, 1);
  EXPECT_NEAR(align[0], 0.78, 1e-12);
  EXPECT_NEAR(align[1], 1.0 / 3.0, 1e-12);
  EXPECT_NEAR(normalized_compression_distance(50, 50, 61), 0.22, 1e-15);
}

TEST(ZipFit, LongInputsAndAnyThreadCountGiveTheSameScores) {
  std::mt19937 rng(7);
  auto text = [&](size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) s += static_cast<char>('a' + rng() % 6);
    return s;
  };
  std::vector<std::string> candidates, targets;
  for (int i = 0; i < 40; ++i) candidates.push_back(text(1 + rng() % 3000));
  candidates.push_back(text(200000));  // compressed output longer than the sizer's 64 KiB buffer
  for (int i = 0; i < 7; ++i) targets.push_back(text(1 + rng() % 500));
  std::vector<int64_t> rows(candidates.size());
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int64_t>(i);
  const auto one = zip_fit_align(candidates, targets, rows, 1);
  size_t calls = 0;
  const auto three = zip_fit_align(candidates, targets, rows, 3, [&](size_t) { ++calls; });
  EXPECT_EQ(one, three);
  const auto some = zip_fit_align(candidates, targets, {40, 3}, 2);
  EXPECT_EQ(some, (std::vector<double>{one[40], one[3]}));
  GzipSizer gz;
  EXPECT_GT(gz.size(candidates.back()), 65536u);
}

TEST(ZipFit, TopKKeepsTheBestInInputOrderEarlierLinesWinTies) {
  const std::vector<double> s = {0.5, 0.9, 0.5, 0.1, 0.9, 0.5};
  EXPECT_EQ(top_k(s, 3, true), (std::vector<int64_t>{0, 1, 4}));
  EXPECT_EQ(top_k(s, 2, false), (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(top_k(s, 10, true).size(), 6u);
}

TEST(SelectText, FieldsDefaultByKindAndJoinWithoutSeparator) {
  EXPECT_EQ(text_fields("", DataKind::kSft), (std::vector<std::string>{"prompt", "completion"}));
  EXPECT_EQ(text_fields("", DataKind::kPreference), (std::vector<std::string>{"prompt", "chosen"}));
  EXPECT_EQ(text_fields("", DataKind::kNegatives), (std::vector<std::string>{"prompt", "rejected"}));
  EXPECT_EQ(text_fields("", DataKind::kPrompts), (std::vector<std::string>{"prompt"}));
  EXPECT_EQ(text_fields("completion+prompt", DataKind::kSft), (std::vector<std::string>{"completion", "prompt"}));
  EXPECT_EQ(example_text(R"({"prompt": "a\n", "completion": "b"})", {"prompt", "completion"}, "f", 1), "a\nb");
  const std::string messages =
      R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},)"
      R"( {"role": "assistant", "content": "A"}]})";
  EXPECT_EQ(example_text(messages, {"prompt"}, "f", 1), "S\nU");
  EXPECT_EQ(example_text(messages, {"prompt", "completion"}, "f", 1), "S\nUA");
  EXPECT_EQ(example_text(R"({"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "c"}]})",
                         {"prompt", "chosen"}, "f", 1),
            "qc");
}

TEST(SelectText, AMissingFieldNamesFileLineAndField) {
  testing::TempDir dir;
  const std::string path = dir.write("pool.jsonl", "{\"prompt\": \"p\", \"completion\": \"c\"}\n\n"
                                                   "{\"prompt\": \"p2\", \"completion\": \"c2\"}\r\n");
  const auto texts = read_selection_texts(path, "", false);
  EXPECT_EQ(texts.texts, (std::vector<std::string>{"pc", "p2c2"}));
  EXPECT_EQ(texts.lines, (std::vector<int64_t>{1, 3}));
  const auto e = error_of([&] { read_selection_texts(path, "prompt+chosen", false); });
  EXPECT_TRUE(contains(e, path + ":1: chosen: missing field")) << e;
  const auto e2 = error_of([&] { example_text(R"({"prompt": 3})", {"prompt"}, "x.jsonl", 9); });
  EXPECT_TRUE(contains(e2, "x.jsonl:9: prompt: expected a string or a list of messages")) << e2;
  EXPECT_THROW(read_selection_texts(dir.write("empty.jsonl", ""), "", false), DataError);
}

}  // namespace
}  // namespace aligntrain::data
