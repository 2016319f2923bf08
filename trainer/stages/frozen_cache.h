// One cache for what a frozen model computes on a data set before training: a reference model's log-probs of every
// response (precomputed references) and a teacher's top-k tables (precomputed teachers). Each is a safetensors file
// <output_dir>/cache/<kind>-<key>.safetensors whose key digests everything the outputs depend on:
//   - the model: its config and weight files' contents (or its init preset and seed), and its tokenizer files;
//   - the encoded examples themselves: every response's token ids and prompt length, in order. These fix the data
//     file, the chat template's text (not only its name), the tokenizer, max_length, truncation and skip_invalid;
//   - the dtype and the tensor-parallel degree (which round differently), and the caller's `extra` settings.
// So a cache file is never stale, and reruns and resumes reuse it.
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/schema.h"
#include "trainer/runtime/world.h"
#include "trainer/stages/models.h"
#include "trainer/stages/responses.h"

namespace aligntrain::stages {

struct FrozenCache {
  std::filesystem::path file;
  std::string key;
};

// The cache entry of `kind` ("reference", "teacher") for `model`'s outputs on `set`.
FrozenCache frozen_cache(const config::Recipe& recipe, const std::string& kind, const ModelSource& model,
                         const ResponseSet& set, at::ScalarType dtype, const std::string& extra);

using CachedTensors = std::map<std::string, at::Tensor>;

// The cached tensors when every rank could read them and `valid` accepts them; nullopt (on every rank) otherwise,
// warning about a file that exists but is unreadable or of the wrong shape. Collective over the world.
std::optional<CachedTensors> read_frozen(const runtime::World& world, const FrozenCache& cache,
                                         const std::function<bool(const CachedTensors&)>& valid);

// Writes the tensors (world rank 0, durably), with `metadata`. Collective over the world (ends with a barrier).
void write_frozen(const runtime::World& world, const FrozenCache& cache,
                  const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata);

}  // namespace aligntrain::stages
