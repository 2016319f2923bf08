// Text embeddings from a frozen model: the mean of its final hidden states over a token sequence. BCO's UDM embeds
// prompts with it, ISA (select stages) whole examples.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "trainer/model/transformer.h"
#include "trainer/stages/stage_env.h"

namespace aligntrain::stages {

// [N, hidden] fp64, row i the mean final hidden state over sequences[i] (each non-empty). Batches of `micro`
// sequences are dealt over the data-parallel ranks and the rows summed back, so every rank returns the whole table.
// `on_batch(done)` (optional) is called on every rank after each of its batches with the rows it has embedded.
at::Tensor mean_hidden_states(StageEnv& env, model::CausalLM& lm, const std::vector<std::vector<int32_t>>& sequences,
                              int64_t micro, int32_t pad, const std::function<void(int64_t)>& on_batch = {});

}  // namespace aligntrain::stages
