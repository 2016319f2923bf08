// data/sampler.h: the example stream (one seeded permutation per epoch), step planning with and without packing,
// resuming from a cursor, and the split of a step's rows across data-parallel ranks and micro-batches.
#include "data/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

namespace aligntrain::data {
namespace {

using Rows = std::vector<std::vector<int64_t>>;

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

std::vector<int64_t> flatten(const Rows& rows) {
  std::vector<int64_t> out;
  for (const auto& row : rows) out.insert(out.end(), row.begin(), row.end());
  return out;
}

int64_t row_tokens(const std::vector<int64_t>& row, const std::vector<int64_t>& lengths) {
  int64_t n = 0;
  for (int64_t ex : row) n += lengths[static_cast<size_t>(ex)];
  return n;
}

// ---------------------------------------------------------------------------------------------------------------
// Permutations

TEST(Sampler, RejectsAnEmptyDataset) {
  EXPECT_THROW(Sampler(0, 1), std::invalid_argument);
  EXPECT_THROW(Sampler(-3, 1), std::invalid_argument);
}

TEST(Sampler, EachEpochIsAPermutation) {
  Sampler s(37, 5);
  for (int64_t epoch = 0; epoch < 6; ++epoch) {
    auto p = s.permutation(epoch);
    ASSERT_EQ(p.size(), 37u);
    std::sort(p.begin(), p.end());
    EXPECT_EQ(p, iota(37)) << "epoch " << epoch;
  }
}

TEST(Sampler, PermutationIsDeterministicPerSeedAndEpoch) {
  Sampler a(50, 1234), b(50, 1234);
  for (int64_t epoch : {0, 1, 7, 1000}) EXPECT_EQ(a.permutation(epoch), b.permutation(epoch)) << epoch;
  // Calling at() (which caches one epoch) does not change what permutation() returns.
  for (int64_t p = 0; p < 120; ++p) a.at(p);
  EXPECT_EQ(a.permutation(0), b.permutation(0));
  EXPECT_EQ(a.permutation(2), b.permutation(2));
}

TEST(Sampler, PermutationIsShuffled) {
  Sampler s(50, 9);
  EXPECT_NE(s.permutation(0), iota(50));
  EXPECT_NE(s.permutation(1), iota(50));
}

TEST(Sampler, DifferentEpochsAndSeedsDiffer) {
  Sampler s(50, 3);
  std::set<std::vector<int64_t>> seen;
  for (int64_t epoch = 0; epoch < 10; ++epoch) seen.insert(s.permutation(epoch));
  EXPECT_EQ(seen.size(), 10u);
  EXPECT_NE(Sampler(50, 3).permutation(0), Sampler(50, 4).permutation(0));
  EXPECT_NE(Sampler(50, 0).permutation(0), Sampler(50, 1).permutation(0));
  // Seeds and epochs are not interchangeable.
  EXPECT_NE(Sampler(50, 0).permutation(1), Sampler(50, 1).permutation(0));
}

// The stream order is part of the checkpoint format: a resumed run must see the same examples as the run that
// wrote the checkpoint, even across builds. These values pin the generator (splitmix64 seeded from (seed, epoch)).
TEST(Sampler, PermutationIsStableAcrossBuilds) {
  Sampler s(8, 42);
  EXPECT_EQ(s.permutation(0), (std::vector<int64_t>{3, 5, 4, 7, 0, 1, 2, 6}));
  EXPECT_EQ(s.permutation(1), (std::vector<int64_t>{5, 2, 1, 0, 4, 6, 7, 3}));
}

TEST(Sampler, OneExampleIsAlwaysThatExample) {
  Sampler s(1, 77);
  for (int64_t p = 0; p < 5; ++p) EXPECT_EQ(s.at(p), 0);
}

TEST(Sampler, AtFollowsTheConcatenatedPermutations) {
  Sampler s(7, 11);
  const Sampler ref(7, 11);
  // Forwards, then jumping back to an earlier epoch and forwards again (the epoch cache must follow).
  std::vector<int64_t> positions;
  for (int64_t p = 0; p < 30; ++p) positions.push_back(p);
  for (int64_t p : {3, 29, 0, 15, 14, 8, 6, 7, 22}) positions.push_back(p);
  for (int64_t p : positions) EXPECT_EQ(s.at(p), ref.permutation(p / 7)[p % 7]) << "position " << p;
}

// ---------------------------------------------------------------------------------------------------------------
// Steps without packing

TEST(PlanStep, WithoutPackingConsumesExactlyGlobalPositions) {
  Sampler s(10, 2);
  const Sampler ref(10, 2);
  const auto step = plan_step(s, 4, 3, false, {}, 0);
  EXPECT_EQ(step.begin, 4);
  EXPECT_EQ(step.end, 7);
  const auto perm = ref.permutation(0);
  EXPECT_EQ(step.rows, (Rows{{perm[4]}, {perm[5]}, {perm[6]}}));
}

TEST(PlanStep, WithoutPackingCrossesTheEpochBoundary) {
  Sampler s(5, 8);
  const Sampler ref(5, 8);
  const auto e0 = ref.permutation(0), e1 = ref.permutation(1);
  const auto step = plan_step(s, 3, 4, false, {}, 0);
  EXPECT_EQ(step.begin, 3);
  EXPECT_EQ(step.end, 7);
  EXPECT_EQ(step.rows, (Rows{{e0[3]}, {e0[4]}, {e1[0]}, {e1[1]}}));
  // A step larger than the dataset spans more than two epochs.
  const auto big = plan_step(s, 0, 12, false, {}, 0);
  EXPECT_EQ(big.end, 12);
  const auto e2 = ref.permutation(2);
  std::vector<int64_t> want(e0);
  want.insert(want.end(), e1.begin(), e1.end());
  want.insert(want.end(), e2.begin(), e2.begin() + 2);
  EXPECT_EQ(flatten(big.rows), want);
}

TEST(PlanStep, EveryExampleOncePerEpoch) {
  Sampler s(12, 4);
  int64_t cursor = 0;
  std::vector<int64_t> seen;
  for (int k = 0; k < 6; ++k) {  // 6 steps of 4 = 2 epochs
    const auto step = plan_step(s, cursor, 4, false, {}, 0);
    EXPECT_EQ(step.begin, cursor);
    cursor = step.end;
    const auto f = flatten(step.rows);
    seen.insert(seen.end(), f.begin(), f.end());
  }
  ASSERT_EQ(seen.size(), 24u);
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::vector<int64_t> part(seen.begin() + 12 * epoch, seen.begin() + 12 * (epoch + 1));
    std::sort(part.begin(), part.end());
    EXPECT_EQ(part, iota(12)) << "epoch " << epoch;
  }
}

// Resuming: the cursor after k steps planned one by one, given to a fresh Sampler, plans the same next steps.
void check_resume(bool packing, const std::vector<int64_t>& lengths, int64_t max_length, int64_t global) {
  const int64_t n = static_cast<int64_t>(lengths.size());
  Sampler run(n, 99);
  int64_t cursor = 0;
  std::vector<StepRows> steps;
  for (int k = 0; k < 12; ++k) {
    steps.push_back(plan_step(run, cursor, global, packing, lengths, max_length));
    EXPECT_EQ(steps.back().begin, cursor);
    EXPECT_GT(steps.back().end, cursor);
    cursor = steps.back().end;
  }
  for (size_t k = 0; k < steps.size(); ++k) {
    Sampler resumed(n, 99);  // a new process: nothing cached
    int64_t c = steps[k].begin;
    for (size_t j = k; j < steps.size(); ++j) {
      const auto again = plan_step(resumed, c, global, packing, lengths, max_length);
      EXPECT_EQ(again.begin, steps[j].begin) << "resumed at step " << k << ", step " << j;
      EXPECT_EQ(again.end, steps[j].end) << "resumed at step " << k << ", step " << j;
      EXPECT_EQ(again.rows, steps[j].rows) << "resumed at step " << k << ", step " << j;
      c = again.end;
    }
  }
}

TEST(PlanStep, ResumingAtTheCursorGivesTheSameRows) {
  check_resume(false, std::vector<int64_t>(7, 1), 0, 3);  // 12 steps of 3 over 7 examples: mid-epoch cursors
}

TEST(PlanStep, ResumingAPackedStreamGivesTheSameRows) {
  check_resume(true, {5, 3, 9, 1, 4, 4, 2, 7, 6, 8, 3}, 10, 2);
}

// ---------------------------------------------------------------------------------------------------------------
// Packing

TEST(PlanStep, PackingEqualLengthsHandWorked) {
  // Length 4 in rows of 10: two examples a row, so 3 rows take 6 stream entries.
  Sampler s(5, 6);
  const Sampler ref(5, 6);
  const std::vector<int64_t> lengths(5, 4);
  const auto step = plan_step(s, 0, 3, true, lengths, 10);
  EXPECT_EQ(step.begin, 0);
  EXPECT_EQ(step.end, 6);
  const auto e0 = ref.permutation(0), e1 = ref.permutation(1);
  EXPECT_EQ(step.rows, (Rows{{e0[0], e0[1]}, {e0[2], e0[3]}, {e0[4], e1[0]}}));
  const auto next = plan_step(s, step.end, 3, true, lengths, 10);
  EXPECT_EQ(next.begin, 6);
  EXPECT_EQ(next.end, 12);
  EXPECT_EQ(next.rows.front().front(), e1[1]);
}

TEST(PlanStep, PackingExactFitAndFullRows) {
  // Lengths that exactly fill a row (5 + 5 = 10) share it; a full-length example has a row of its own.
  Sampler s(1, 0);
  const auto one = plan_step(s, 0, 2, true, {5}, 10);
  EXPECT_EQ(one.rows, (Rows{{0, 0}, {0, 0}}));
  EXPECT_EQ(one.end, 4);
  const auto full = plan_step(s, 0, 3, true, {10}, 10);
  EXPECT_EQ(full.rows, (Rows{{0}, {0}, {0}}));
  EXPECT_EQ(full.end, 3);
  const auto big = plan_step(s, 7, 2, true, {3}, 10);  // 3 + 3 + 3 = 9 fits, a fourth does not
  EXPECT_EQ(big.rows, (Rows{{0, 0, 0}, {0, 0, 0}}));
  EXPECT_EQ(big.begin, 7);
  EXPECT_EQ(big.end, 13);
}

// Greedy packing, checked as properties that determine it: rows of at most max_length, the stream entries
// [begin, end) in order and each once, `global` rows, each row ended because the next example did not fit, and the
// example that did not fit into the last row is the next step's first.
TEST(PlanStep, PackingPropertiesOverManySteps) {
  const std::vector<int64_t> lengths = {5, 3, 9, 1, 4, 4, 2, 7, 6, 8, 3, 10, 1, 1, 2, 6, 5};
  const int64_t n = static_cast<int64_t>(lengths.size()), max_length = 10;
  for (int64_t global : {1, 2, 3, 5}) {
    Sampler s(n, 31), ref(n, 31);
    int64_t cursor = 0;
    std::vector<int64_t> consumed;
    for (int k = 0; k < 15; ++k) {
      SCOPED_TRACE(::testing::Message() << "global " << global << " step " << k);
      const auto step = plan_step(s, cursor, global, true, lengths, max_length);
      ASSERT_EQ(step.begin, cursor);
      ASSERT_EQ(static_cast<int64_t>(step.rows.size()), global);
      std::vector<int64_t> want;
      for (int64_t p = step.begin; p < step.end; ++p) want.push_back(ref.at(p));
      EXPECT_EQ(flatten(step.rows), want);
      for (size_t r = 0; r < step.rows.size(); ++r) {
        ASSERT_FALSE(step.rows[r].empty());
        const int64_t used = row_tokens(step.rows[r], lengths);
        EXPECT_LE(used, max_length) << "row " << r;
        // The row ended because the next example (the next row's first, or the next step's) did not fit.
        const int64_t next = r + 1 < step.rows.size() ? step.rows[r + 1].front() : ref.at(step.end);
        EXPECT_GT(used + lengths[static_cast<size_t>(next)], max_length) << "row " << r;
      }
      cursor = step.end;
      consumed.insert(consumed.end(), want.begin(), want.end());
    }
    // Whole epochs seen so far hold every example exactly once.
    const int64_t epochs = static_cast<int64_t>(consumed.size()) / n;
    ASSERT_GE(epochs, 1);
    for (int64_t e = 0; e < epochs; ++e) {
      std::vector<int64_t> part(consumed.begin() + e * n, consumed.begin() + (e + 1) * n);
      std::sort(part.begin(), part.end());
      EXPECT_EQ(part, iota(n)) << "global " << global << " epoch " << e;
    }
  }
}

TEST(PlanStep, TheExampleThatDoesNotFitStartsTheNextStep) {
  // Stream of one example of length 6 in rows of 10: every row holds one; a step of 2 rows consumes 2 entries.
  Sampler s(1, 0);
  const auto a = plan_step(s, 0, 2, true, {6}, 10);
  EXPECT_EQ(a.end, 2);
  EXPECT_EQ(a.rows, (Rows{{0}, {0}}));
  // With a real permutation: the next step begins at the entry that broke the last row of this one.
  const std::vector<int64_t> lengths = {7, 2, 6, 5, 1, 9};
  Sampler t(6, 17);
  const Sampler ref(6, 17);
  const auto step = plan_step(t, 0, 2, true, lengths, 10);
  const auto next = plan_step(t, step.end, 2, true, lengths, 10);
  EXPECT_EQ(next.rows.front().front(), ref.permutation(step.end / 6)[step.end % 6]);
  EXPECT_GT(row_tokens(step.rows.back(), lengths) + lengths[next.rows.front().front()], 10);
}

// ---------------------------------------------------------------------------------------------------------------
// Micro-batches

StepRows numbered_step(int64_t global) {
  StepRows step;
  for (int64_t i = 0; i < global; ++i) step.rows.push_back({100 + i});
  step.end = global;
  return step;
}

TEST(MicroBatches, HandWorkedSplit) {
  const auto step = numbered_step(8);
  using Micro = std::vector<Rows>;
  EXPECT_EQ(micro_batches(step, 0, 2, 2), (Micro{{{100}, {101}}, {{102}, {103}}}));
  EXPECT_EQ(micro_batches(step, 1, 2, 2), (Micro{{{104}, {105}}, {{106}, {107}}}));
  EXPECT_EQ(micro_batches(step, 0, 1, 4), (Micro{{{100}, {101}, {102}, {103}}, {{104}, {105}, {106}, {107}}}));
  EXPECT_EQ(micro_batches(step, 3, 4, 1), (Micro{{{106}}, {{107}}}));
  EXPECT_EQ(micro_batches(step, 2, 4, 2), (Micro{{{104}, {105}}}));
}

TEST(MicroBatches, MicroBatchSizes) {
  const auto step = numbered_step(12);
  // Recipes are validated so that micro · dp divides global.
  for (int dp : {1, 2, 3, 4, 6}) {
    for (int64_t micro : {1, 2, 3, 6}) {
      if ((12 / dp) % micro != 0) continue;
      for (int rank = 0; rank < dp; ++rank) {
        const auto mb = micro_batches(step, rank, dp, micro);
        const int64_t per_rank = 12 / dp;
        EXPECT_EQ(static_cast<int64_t>(mb.size()), per_rank / micro) << dp << " " << micro << " " << rank;
        for (const auto& m : mb) EXPECT_EQ(static_cast<int64_t>(m.size()), micro);
      }
    }
  }
}

TEST(MicroBatches, RanksAreDisjointAndCoverTheStep) {
  const std::vector<int64_t> lengths = {5, 3, 9, 1, 4, 4, 2, 7, 6, 8, 3};
  Sampler s(11, 5);
  const auto step = plan_step(s, 13, 8, true, lengths, 10);
  for (int dp : {1, 2, 4, 8}) {
    Rows joined;
    for (int rank = 0; rank < dp; ++rank) {
      for (const auto& micro : micro_batches(step, rank, dp, 1)) {
        for (const auto& row : micro) joined.push_back(row);
      }
    }
    // Together, in rank order, the ranks' rows are the step's rows, each once.
    EXPECT_EQ(joined, step.rows) << "dp " << dp;
  }
  // Rank 0 and rank 1 of 2 share no row position: their blocks are [0, 4) and [4, 8).
  const auto r0 = micro_batches(step, 0, 2, 2), r1 = micro_batches(step, 1, 2, 2);
  ASSERT_EQ(r0.size(), 2u);
  ASSERT_EQ(r1.size(), 2u);
  EXPECT_EQ(r0[0][0], step.rows[0]);
  EXPECT_EQ(r0[1][1], step.rows[3]);
  EXPECT_EQ(r1[0][0], step.rows[4]);
  EXPECT_EQ(r1[1][1], step.rows[7]);
}

TEST(MicroBatches, UnpackedRanksHoldDisjointExamples) {
  // Without packing and within one epoch, different ranks never see the same example in a step.
  Sampler s(16, 21);
  const auto step = plan_step(s, 0, 8, false, {}, 0);
  std::set<int64_t> a, b;
  for (const auto& m : micro_batches(step, 0, 2, 2))
    for (const auto& row : m) a.insert(row.begin(), row.end());
  for (const auto& m : micro_batches(step, 1, 2, 2))
    for (const auto& row : m) b.insert(row.begin(), row.end());
  EXPECT_EQ(a.size(), 4u);
  EXPECT_EQ(b.size(), 4u);
  for (int64_t x : a) EXPECT_EQ(b.count(x), 0u) << x;
}

// ---------------------------------------------------------------------------------------------------------------
// Steps per epoch

TEST(StepsForEpochs, FloorAndAtLeastOne) {
  EXPECT_EQ(steps_for_epochs(1, 10, 4), 2);   // floor(10 / 4)
  EXPECT_EQ(steps_for_epochs(3, 10, 4), 7);   // floor(30 / 4), not 3 · floor(10 / 4) = 6
  EXPECT_EQ(steps_for_epochs(2, 8, 8), 2);
  EXPECT_EQ(steps_for_epochs(1, 3, 8), 1);    // fewer rows than a step: still one step
  EXPECT_EQ(steps_for_epochs(5, 100, 1), 500);
}

TEST(PackedRowsPerEpoch, HandWorked) {
  Sampler s(7, 3);
  EXPECT_EQ(packed_rows_per_epoch(s, std::vector<int64_t>(7, 4), 10), 4);   // 2 a row: ceil(7 / 2)
  EXPECT_EQ(packed_rows_per_epoch(s, std::vector<int64_t>(7, 10), 10), 7);  // one a row
  EXPECT_EQ(packed_rows_per_epoch(s, std::vector<int64_t>(7, 1), 10), 1);   // all in one row
  EXPECT_EQ(packed_rows_per_epoch(s, std::vector<int64_t>(7, 3), 10), 3);   // 3 + 3 + 1 examples
  EXPECT_EQ(packed_rows_per_epoch(s, std::vector<int64_t>(7, 5), 10), 4);   // 5 + 5 fills exactly: 2 a row
}

TEST(PackedRowsPerEpoch, MatchesThePackedStreamOverEpochZero) {
  // Planning one row a step from cursor 0, the steps that start inside epoch 0 are the rows of epoch 0.
  const std::vector<int64_t> lengths = {5, 3, 9, 1, 4, 4, 2, 7, 6, 8, 3, 10, 1, 1, 2, 6, 5};
  const int64_t n = static_cast<int64_t>(lengths.size());
  for (uint64_t seed : {1u, 2u, 3u, 40u}) {
    Sampler s(n, seed), planner(n, seed);
    int64_t cursor = 0, rows = 0;
    while (cursor < n) {
      cursor = plan_step(planner, cursor, 1, true, lengths, 10).end;
      ++rows;
    }
    EXPECT_EQ(packed_rows_per_epoch(s, lengths, 10), rows) << "seed " << seed;
  }
  // And steps_for_epochs turns those rows into steps.
  Sampler s(n, 1);
  const int64_t rows = packed_rows_per_epoch(s, lengths, 10);
  EXPECT_EQ(steps_for_epochs(2, rows, 3), 2 * rows / 3);
}

}  // namespace
}  // namespace aligntrain::data
