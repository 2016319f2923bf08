// How work is split over data-parallel ranks outside the training sampler (evaluation, precomputed tables,
// embeddings, generation, logprobs): examples 0..n-1 dealt round-robin, rank r taking r, r + size, r + 2·size, ...,
// then cut into batches in that order. Every rank computes its rows and the results are summed over the group
// (each row comes from exactly one rank). Also the one splitmix64, used wherever a seed must be mixed.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace aligntrain::data {

// This rank's share of n examples, dealt round-robin.
inline std::vector<int64_t> rank_share(int64_t n, int rank, int size) {
  std::vector<int64_t> mine;
  for (int64_t i = rank; i < n; i += size) mine.push_back(i);
  return mine;
}

// This rank's share of n examples in batches of at most `batch` (the last may be shorter).
inline std::vector<std::vector<int64_t>> rank_batches(int64_t n, int rank, int size, int64_t batch) {
  const auto mine = rank_share(n, rank, size);
  std::vector<std::vector<int64_t>> out;
  for (size_t start = 0; start < mine.size(); start += static_cast<size_t>(batch)) {
    out.emplace_back(mine.begin() + start, mine.begin() + std::min(mine.size(), start + static_cast<size_t>(batch)));
  }
  return out;
}

// splitmix64's output function: a bijective 64-bit mix (Steele, Lea & Flood; Vigna's constants).
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// One step of the splitmix64 generator: advances `state` and returns the next value.
inline uint64_t splitmix64(uint64_t& state) { return mix64(state += 0x9E3779B97F4A7C15ull); }

// splitmix64's first output for seed x (the state is not kept): decorrelates neighbouring seeds.
inline uint64_t splitmix64_of(uint64_t x) { return splitmix64(x); }

}  // namespace aligntrain::data
