#include "data/sampler.h"

#include "data/dealing.h"

#include <algorithm>
#include <stdexcept>

namespace aligntrain::data {

Sampler::Sampler(int64_t num_examples, uint64_t seed) : n_(num_examples), seed_(seed) {
  if (n_ <= 0) throw std::invalid_argument("Sampler: no examples");
}

std::vector<int64_t> Sampler::permutation(int64_t epoch) const {
  std::vector<int64_t> order(static_cast<size_t>(n_));
  for (int64_t i = 0; i < n_; ++i) order[i] = i;
  uint64_t state = seed_ * 0x100000001B3ull ^ (static_cast<uint64_t>(epoch) + 0x5851F42D4C957F2Dull);
  for (int64_t i = n_ - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(splitmix64(state) % static_cast<uint64_t>(i + 1));
    std::swap(order[i], order[j]);
  }
  return order;
}

int64_t Sampler::at(int64_t position) {
  const int64_t epoch = position / n_;
  if (epoch != cached_epoch_) {
    order_ = permutation(epoch);
    cached_epoch_ = epoch;
  }
  return order_[position % n_];
}

StepRows plan_step(Sampler& sampler, int64_t cursor, int64_t global, bool packing, const std::vector<int64_t>& lengths,
                   int64_t max_length) {
  StepRows step;
  step.begin = cursor;
  int64_t pos = cursor;
  if (!packing) {
    for (int64_t r = 0; r < global; ++r) step.rows.push_back({sampler.at(pos++)});
  } else {
    int64_t used = 0;
    while (true) {
      const int64_t ex = sampler.at(pos);
      const int64_t len = lengths.at(static_cast<size_t>(ex));
      if (!step.rows.empty() && used + len <= max_length) {
        step.rows.back().push_back(ex);
        used += len;
      } else {
        if (static_cast<int64_t>(step.rows.size()) == global) break;
        step.rows.push_back({ex});
        used = len;
      }
      ++pos;
    }
  }
  step.end = pos;
  return step;
}

std::vector<std::vector<std::vector<int64_t>>> micro_batches(const StepRows& step, int dp_rank, int dp_size,
                                                             int64_t micro) {
  const int64_t global = static_cast<int64_t>(step.rows.size());
  const int64_t per_rank = global / dp_size;
  std::vector<std::vector<std::vector<int64_t>>> out;
  for (int64_t start = dp_rank * per_rank; start < (dp_rank + 1) * per_rank; start += micro) {
    const int64_t stop = std::min((dp_rank + 1) * per_rank, start + micro);
    out.emplace_back(step.rows.begin() + start, step.rows.begin() + stop);
  }
  return out;
}

int64_t steps_for_epochs(int64_t epochs, int64_t rows_per_epoch, int64_t global) {
  return std::max<int64_t>(1, epochs * rows_per_epoch / global);
}

int64_t packed_rows_per_epoch(Sampler& sampler, const std::vector<int64_t>& lengths, int64_t max_length) {
  int64_t rows = 0, used = max_length + 1;
  for (int64_t p = 0; p < sampler.num_examples(); ++p) {
    const int64_t len = lengths.at(static_cast<size_t>(sampler.at(p)));
    if (used + len <= max_length) {
      used += len;
    } else {
      ++rows;
      used = len;
    }
  }
  return rows;
}

}  // namespace aligntrain::data
