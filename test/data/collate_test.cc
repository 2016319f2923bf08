// data/collate.h: padding, attention and loss masks, per-document positions and segments of packed rows, and the
// token counts (loss_tokens() agrees with what collate counts).
#include "data/collate.h"

#include <gtest/gtest.h>

#include <vector>

namespace aligntrain::data {
namespace {

using V = std::vector<int64_t>;

Encoded enc(std::vector<int32_t> ids, int64_t prompt_len) {
  Encoded e;
  e.ids = std::move(ids);
  e.prompt_len = prompt_len;
  return e;
}

// A: 2 prompt tokens + 3 response tokens; B: 1 + 2; C: no prompt at all (2 response tokens).
const Encoded kA = enc({11, 12, 13, 14, 15}, 2);
const Encoded kB = enc({21, 22, 23}, 1);
const Encoded kC = enc({31, 32}, 0);

constexpr int32_t kPad = 99;

TEST(Collate, OneDocumentPerRowIsPaddedToTheLongest) {
  const auto b = collate({{&kB}, {&kA}, {&kC}}, {kPad, false});
  EXPECT_EQ(b.rows, 3);
  EXPECT_EQ(b.length, 5);
  EXPECT_FALSE(b.packed);
  EXPECT_EQ(b.input_ids, (V{21, 22, 23, 99, 99,  //
                            11, 12, 13, 14, 15,  //
                            31, 32, 99, 99, 99}));
  EXPECT_EQ(b.attention_mask, (V{1, 1, 1, 0, 0,  //
                                 1, 1, 1, 1, 1,  //
                                 1, 1, 0, 0, 0}));
  EXPECT_EQ(b.position_ids, (V{0, 1, 2, 0, 0,  //
                               0, 1, 2, 3, 4,  //
                               0, 1, 0, 0, 0}));
  EXPECT_EQ(b.segment_ids, (V{1, 1, 1, 0, 0,  //
                              1, 1, 1, 1, 1,  //
                              1, 1, 0, 0, 0}));
  // Response tokens only: B from 1, A from 2, C (no prompt) from 1: its first token is predicted by nothing.
  EXPECT_EQ(b.loss_mask, (V{0, 1, 1, 0, 0,  //
                            0, 0, 1, 1, 1,  //
                            0, 1, 0, 0, 0}));
  EXPECT_EQ(b.loss_tokens, 2 + 3 + 1);
  EXPECT_EQ(b.tokens, 3 + 5 + 2);
}

TEST(Collate, PackedRowsRestartPositionsAndNumberSegments) {
  const auto b = collate({{&kB}, {&kA, &kC}}, {kPad, false});
  EXPECT_EQ(b.rows, 2);
  EXPECT_EQ(b.length, 7);
  EXPECT_TRUE(b.packed);
  EXPECT_EQ(b.input_ids, (V{21, 22, 23, 99, 99, 99, 99,  //
                            11, 12, 13, 14, 15, 31, 32}));
  EXPECT_EQ(b.attention_mask, (V{1, 1, 1, 0, 0, 0, 0,  //
                                 1, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(b.position_ids, (V{0, 1, 2, 0, 0, 0, 0,  //
                               0, 1, 2, 3, 4, 0, 1}));
  EXPECT_EQ(b.segment_ids, (V{1, 1, 1, 0, 0, 0, 0,  //
                              1, 1, 1, 1, 1, 2, 2}));
  EXPECT_EQ(b.loss_mask, (V{0, 1, 1, 0, 0, 0, 0,  //
                            0, 0, 1, 1, 1, 0, 1}));
  EXPECT_EQ(b.loss_tokens, 6);
  EXPECT_EQ(b.tokens, 10);
}

TEST(Collate, ThreeDocumentsInARow) {
  const auto b = collate({{&kC, &kB, &kC}}, {0, false});
  EXPECT_EQ(b.length, 7);
  EXPECT_EQ(b.input_ids, (V{31, 32, 21, 22, 23, 31, 32}));
  EXPECT_EQ(b.position_ids, (V{0, 1, 0, 1, 2, 0, 1}));
  EXPECT_EQ(b.segment_ids, (V{1, 1, 2, 2, 2, 3, 3}));
  EXPECT_EQ(b.loss_mask, (V{0, 1, 0, 1, 1, 0, 1}));
  EXPECT_EQ(b.loss_tokens, 4);
  EXPECT_EQ(b.tokens, 7);
}

TEST(Collate, TrainOnPromptMasksOnlyEachDocumentsFirstToken) {
  const auto b = collate({{&kB}, {&kA, &kC}}, {kPad, true});
  EXPECT_EQ(b.loss_mask, (V{0, 1, 1, 0, 0, 0, 0,  //
                            0, 1, 1, 1, 1, 0, 1}));
  EXPECT_EQ(b.loss_tokens, 2 + 4 + 1);
  EXPECT_EQ(b.tokens, 10);
  // The other arrays do not depend on train_on_prompt.
  const auto plain = collate({{&kB}, {&kA, &kC}}, {kPad, false});
  EXPECT_EQ(b.input_ids, plain.input_ids);
  EXPECT_EQ(b.attention_mask, plain.attention_mask);
  EXPECT_EQ(b.position_ids, plain.position_ids);
  EXPECT_EQ(b.segment_ids, plain.segment_ids);
}

TEST(Collate, PadIdIsUsedOnlyForPadding) {
  const Encoded zeros = enc({0, 0, 0}, 1);  // token id 0 is a real token here
  const auto b = collate({{&zeros}, {&kC}}, {7, false});
  EXPECT_EQ(b.input_ids, (V{0, 0, 0, 31, 32, 7}));
  EXPECT_EQ(b.attention_mask, (V{1, 1, 1, 1, 1, 0}));
}

TEST(Collate, EmptyBatchThrows) {
  EXPECT_THROW(collate({}, {}), std::invalid_argument);
}

TEST(LossTokens, HandWorked) {
  EXPECT_EQ(loss_tokens(kA, false), 3);
  EXPECT_EQ(loss_tokens(kA, true), 4);
  EXPECT_EQ(loss_tokens(kB, false), 2);
  EXPECT_EQ(loss_tokens(kB, true), 2);
  EXPECT_EQ(loss_tokens(kC, false), 1);  // no prompt: still never the first token
  EXPECT_EQ(loss_tokens(kC, true), 1);
}

TEST(LossTokens, AgreesWithCollate) {
  const std::vector<Encoded> docs = {kA, kB, kC, enc({1, 2}, 1), enc({5, 6, 7, 8, 9, 10}, 5), enc({4}, 0),
                                     enc({3, 3, 3, 3}, 3)};
  for (bool train_on_prompt : {false, true}) {
    int64_t sum = 0;
    std::vector<const Encoded*> row;
    for (const auto& d : docs) {
      const auto one = collate({{&d}}, {0, train_on_prompt});
      EXPECT_EQ(one.loss_tokens, loss_tokens(d, train_on_prompt)) << d.ids.size() << " " << train_on_prompt;
      int64_t mask_sum = 0;
      for (int64_t m : one.loss_mask) mask_sum += m;
      EXPECT_EQ(one.loss_tokens, mask_sum);
      sum += loss_tokens(d, train_on_prompt);
      row.push_back(&d);
    }
    // Packed into one row, and spread over rows, the count is the sum of the documents'.
    EXPECT_EQ(collate({row}, {0, train_on_prompt}).loss_tokens, sum);
    std::vector<std::vector<const Encoded*>> rows;
    for (const auto* d : row) rows.push_back({d});
    EXPECT_EQ(collate(rows, {0, train_on_prompt}).loss_tokens, sum);
  }
}

}  // namespace
}  // namespace aligntrain::data
