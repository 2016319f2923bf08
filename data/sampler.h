// The order in which a stage sees its training examples, and how each optimizer step's global batch is split
// across data-parallel ranks and micro-batches.
//
// The example stream is the concatenation of one permutation of the dataset per epoch; epoch e's permutation is a
// Fisher-Yates shuffle driven by a generator seeded from (seed, e), so it is the same on every rank, every run and
// every resume. A run's position in the stream (the cursor) is a single number: how many stream entries earlier
// steps consumed. Checkpoints store it; resuming restores the stream exactly, mid-epoch included.
//
// Each step takes the next entries of the stream and turns them into `global` rows:
//   - without packing, one example per row: a step consumes exactly `global` entries;
//   - with packing, examples fill rows of at most `max_length` tokens in stream order (a new row starts when the
//     next example does not fit), until `global` rows are full; the example that did not fit starts the next step.
// Every rank plans the same step from the same lengths and takes its own block of rows: rank r of d gets rows
// [r·global/d, (r+1)·global/d), split into consecutive micro-batches of `micro` rows.
#pragma once

#include <cstdint>
#include <vector>

namespace aligntrain::data {

class Sampler {
 public:
  Sampler(int64_t num_examples, uint64_t seed);

  int64_t num_examples() const { return n_; }
  // The example at stream position `position` (>= 0).
  int64_t at(int64_t position);
  // The permutation of epoch `epoch` (for tests).
  std::vector<int64_t> permutation(int64_t epoch) const;

 private:
  int64_t n_;
  uint64_t seed_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> order_;
};

struct StepRows {
  int64_t begin = 0, end = 0;               // stream positions consumed: [begin, end)
  std::vector<std::vector<int64_t>> rows;   // `global` rows of example indices (one each without packing)
};

// Plans the step starting at stream position `cursor`. `lengths[i]` is example i's token count (each at most
// max_length). Without packing, `lengths` and `max_length` are unused.
StepRows plan_step(Sampler& sampler, int64_t cursor, int64_t global, bool packing, const std::vector<int64_t>& lengths,
                   int64_t max_length);

// This rank's micro-batches of a step: rows [rank·G/d, (rank+1)·G/d) in chunks of `micro`.
std::vector<std::vector<std::vector<int64_t>>> micro_batches(const StepRows& step, int dp_rank, int dp_size,
                                                             int64_t micro);

// Optimizer steps in `epochs` passes over the data: floor(epochs · n / global), at least 1. With packing, the
// number of rows the packed stream fills instead of n.
int64_t steps_for_epochs(int64_t epochs, int64_t rows_per_epoch, int64_t global);

// Rows that packing makes from one pass over the data in `sampler`'s epoch-0 order (for steps_for_epochs).
int64_t packed_rows_per_epoch(Sampler& sampler, const std::vector<int64_t>& lengths, int64_t max_length);

}  // namespace aligntrain::data
