// Resuming on another layout (DESIGN.md §8): a checkpoint written by tp × dp ranks (with or without ZeRO-1) loaded by
// ranks of another tensor-parallel degree, data-parallel degree or ZeRO-1 setting. Every tensor this rank needs is
// regathered from the saved shards (tensor-parallel index t of the saved layout: any data-parallel replica that holds
// it, which is the owner under ZeRO-1) into its full shape, checked against the recorded parameter list, and resliced
// for this rank. Nothing is collective: every rank reads the saved files it needs (memory-mapped), so the checkpoint
// folder must be visible to every rank, as for any resume.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "trainer/checkpoint/checkpoint.h"

namespace aligntrain::checkpoint {

// The layout a checkpoint was written with, or is loaded by.
struct ShardLayout {
  int tp = 1, dp = 1;
  bool zero1 = false;
  bool operator==(const ShardLayout& o) const { return tp == o.tp && dp == o.dp && zero1 == o.zero1; }
};

// "tensor 2 x data 1, ZeRO-1 off".
std::string describe(const ShardLayout& layout);

struct ReshardCounts {
  int64_t parameters = 0;        // model tensors loaded
  int64_t resliced = 0;          // of them, split tensors rebuilt from other slices
  int64_t optimizer_tensors = 0;  // optimizer tensors loaded
};

// Loads checkpoint `dir` (written with `state`'s layout) onto this rank: tensor-parallel index `tp_rank` of `tp`,
// world rank `rank`. Copies every tensor of `model` (this rank's shards by HF name) and returns the optimizer tensors
// named in `optimizer` ((state tensor name, parameter name) pairs, AdamW::state_layout()), resliced. Restores the
// RNG state of the saved rank of the same number (rank 0's when the saved layout had fewer ranks). Throws DataError
// naming the file and tensor when one is missing, or the recorded parameter list does not match the model.
NamedTensors load_resharded(const std::filesystem::path& dir, const TrainState& state, int rank, int tp_rank, int tp,
                            const NamedTensors& model, const std::vector<std::pair<std::string, std::string>>& optimizer,
                            ReshardCounts* counts = nullptr);

}  // namespace aligntrain::checkpoint
