// //data:selection: ZIP-FIT's gzip sizes and alignment against METHODS.md §E.1's worked vectors, thread counts
// that change nothing, top-K ordering and ties, and the text an example is compared by (select.text).
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "common/errors.h"
#include "data/deflate_size.h"
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

// The size model must give zlib's exact sizes: random strings over small and large alphabets (few and many
// literals, short and long matches, lazy inserts, chains of 4), repeated phrases (matches of 258 and distances of
// every code), text with multi-byte UTF-8, lengths from 0 to the model's limit (one block and several, stored blocks
// for incompressible input), each alone and as a pair.
TEST(DeflateSizeModel, GivesZlibsSizesExactly) {
  GzipSizer gz;
  DeflateSizeModel model;
  std::mt19937_64 rng(11);
  const std::vector<std::string> words = {"the ", "quick ", "brown ", "fox ", "jumps ", "over ", "lazy ", "dog ",
                                          "def ", "return ", "(a, b)", ":\n    ", "héllo ", "世界 ", "😀 ", "\t"};
  int checked = 0;
  auto check = [&](const std::string& a, const std::string& b) {
    const auto raw = model.raw_size(a, b);
    if (!raw) return;
    ++checked;
    ASSERT_EQ(*raw + 18, gz.zlib_size(a, b)) << "lengths " << a.size() << " + " << b.size();
  };
  for (int i = 0; i < 3000; ++i) {
    const size_t len = i < 2900 ? rng() % 1500 : rng() % 32000;
    std::string s;
    switch (i % 4) {
      case 0: {
        const int alphabet = 1 + static_cast<int>(rng() % 255);
        for (size_t k = 0; k < len; ++k) s += static_cast<char>(1 + rng() % static_cast<uint64_t>(alphabet));
        break;
      }
      case 1:
        while (s.size() < len) s += words[rng() % words.size()];
        break;
      case 2: {
        const std::string unit = std::to_string(rng() % 1000) + "ab" + std::string(rng() % 5, 'x');
        while (s.size() < len) s += (rng() % 7 == 0) ? std::string(1, static_cast<char>('A' + rng() % 26)) : unit;
        break;
      }
      default:
        for (size_t k = 0; k < len; ++k) s += static_cast<char>(' ' + rng() % 4);
    }
    check(s, "");
    check(s, s.substr(0, s.size() / 2));
  }
  EXPECT_GT(checked, 5000);
  // One prefix, many continuations: the shared prefix work is restored exactly each time (short prefixes share
  // nothing, long ones most of their length).
  std::vector<std::string> texts;
  for (int i = 0; i < 60; ++i) {
    std::string s;
    const size_t len = rng() % (i % 3 == 0 ? 200 : 3000);
    while (s.size() < len) s += words[rng() % words.size()] + (rng() % 3 ? "" : std::to_string(rng() % 100));
    texts.push_back(s);
  }
  int shared = 0;
  for (const auto& a : texts) {
    model.set_prefix(a);
    gz.set_prefix(a);
    for (size_t j = 0; j < texts.size(); j += 3) {
      const auto raw = model.raw_size_after_prefix(texts[j]);
      ASSERT_TRUE(raw.has_value());
      ASSERT_EQ(*raw + 18, gz.zlib_size(a, texts[j])) << "prefix " << a.size() << " + " << texts[j].size();
      EXPECT_EQ(gz.size_after_prefix(texts[j]), gz.zlib_size(a, texts[j]));
      ++shared;
    }
  }
  EXPECT_EQ(shared, 60 * 20);
  // The prefix's steps are taken once only where nothing after the prefix can change them: runs and repeats whose
  // matches reach the prefix's end and may go on in the continuation, and continuations shorter than a match, a
  // hash (3 bytes) or the nice length (8) — empty included.
  std::vector<std::string> prefixes = {"", "a", "abcdefg", "abcdefgh", std::string(300, 'a'), std::string(9, 'a')};
  for (const std::string unit : {"ab", "abc", "the fox ", "0123456789"})
    for (const size_t len : {11u, 40u, 257u, 600u}) {
      std::string s;
      while (s.size() < len) s += unit;
      prefixes.push_back(s.substr(0, len));
      prefixes.push_back(texts[len % texts.size()] + s.substr(0, len));
    }
  for (const auto& a : prefixes) {
    model.set_prefix(a);
    const std::string tail = a.substr(a.size() > 300 ? a.size() - 300 : 0);
    std::vector<std::string> continuations = {"", "a", "ab", "abc", "abcdefg", "xyz", tail, tail + tail, "q" + tail};
    for (size_t n = 1; n <= 12; ++n) continuations.push_back(tail.substr(0, n));
    for (const auto& b : continuations) {
      const auto raw = model.raw_size_after_prefix(b);
      ASSERT_TRUE(raw.has_value());
      ASSERT_EQ(*raw + 18, gz.zlib_size(a, b)) << "prefix \"" << a.substr(0, 20) << "\"… (" << a.size()
                                               << " bytes) + " << b.size() << " bytes";
    }
  }
  EXPECT_FALSE(model.raw_size(std::string(40000, 'a')).has_value()) << "window sliding is left to zlib";
  EXPECT_FALSE(model.raw_size(std::string("a\0b", 3)).has_value()) << "NUL bytes are left to zlib";
  EXPECT_EQ(gz.size(std::string(40000, 'a')), gz.zlib_size(std::string(40000, 'a')));
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
  // Tool calls count as their JSON (after the content, which they may leave out); tool results as their content.
  const std::string tools =
      R"({"messages": [{"role": "user", "content": "U"}, {"role": "assistant", "tool_calls": [{"type": "function", )"
      R"("function": {"name": "f", "arguments": {"x": 1}}}]}, {"role": "tool", "content": "R"}, )"
      R"({"role": "assistant", "content": "A"}]})";
  EXPECT_EQ(example_text(tools, {"prompt"}, "f", 1),
            "U\n[{\"function\":{\"arguments\":{\"x\":1},\"name\":\"f\"},\"type\":\"function\"}]\nR");
  const auto e = error_of([] {
    example_text(R"({"messages": [{"role": "assistant"}, {"role": "assistant", "content": "A"}]})", {"prompt"}, "f", 2);
  });
  EXPECT_TRUE(contains(e, "f:2: prompt[0].content: expected a string")) << e;
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
