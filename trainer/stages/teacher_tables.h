// Teachers of a distill stage. A resident teacher is a frozen model whose hidden states are computed per
// micro-batch; a precomputed one (DCKD, ADPA with `precompute: true`) is its top-k tables at every response position
// of the training and eval sets, computed once (data-parallel) before the student loads, cached under
// <output_dir>/cache/teacher-<key>.safetensors (frozen_cache.h: never stale), and the teacher freed.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "config/schema.h"
#include "trainer/model/transformer.h"
#include "trainer/objectives/distill.h"
#include "trainer/stages/models.h"
#include "trainer/stages/responses.h"
#include "trainer/stages/stage_env.h"

namespace aligntrain::stages {

// A teacher's top-k tables at every response-token position of the responses it is needed for, computed once before
// training (DCKD, ADPA with `precompute: true`). Rows of item (example i, column c) start at offsets[i·width + c].
struct TableStore {
  std::vector<int64_t> offsets;  // set.size()·width + 1
  at::Tensor indices, probs, remaining;  // [P, k] int64, [P, k] fp32, [P] fp32 (CPU)

  objectives::TeacherTable rows(const at::Tensor& row_ids, const at::Device& device) const {
    return {indices.index_select(0, row_ids).to(device), probs.index_select(0, row_ids).to(device),
            remaining.index_select(0, row_ids).to(device)};
  }
};

// Row offsets of the tables of `columns` of `set` (other columns get no rows).
std::vector<int64_t> table_offsets(const ResponseSet& set, const std::vector<int64_t>& columns);

// Table rows of the response positions of examples `index` in column c, in the order the stage selects them.
at::Tensor table_rows(const std::vector<int64_t>& offsets, const ResponseSet& set, const std::vector<int64_t>& index,
                      int64_t c);

// Computes (DP-parallel) or reads the tables of `teacher_src` for `columns` of `set`. Collective over the world.
TableStore precompute_tables(StageEnv& env, const config::StageConfig& stage, const ModelSource& teacher_src,
                             const ResponseSet& set, const std::vector<int64_t>& columns, int32_t pad);

// A frozen teacher of a stage: resident (`lm`) or precomputed tables of the training and eval sets.
struct Teacher {
  model::CausalLM* lm = nullptr;
  bool adapters_off = false;  // `teacher_reference: base`: lm is the teacher, run with its LoRA adapters off
  std::optional<TableStore> train, eval;
};

}  // namespace aligntrain::stages
