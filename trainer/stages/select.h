// The select stage (METHODS.md §E): ranks data.train's examples (the candidate pool) and keeps the best K lines, for
// later stages to train on by the stage's name.
//   zip_fit  score = Align(x), gzip-compression similarity to select.target's examples (highest kept)
//   isa      score = the entropy change ΔH of leaving the example out, under a Gaussian mixture fitted to the
//            examples' embeddings by select.embedding_model (prefer: rare keeps the highest, common the lowest)
// Writes select.out (default <stage>/selected.jsonl: the kept lines byte for byte, in input order) and
// <stage>/scores.jsonl ({"line", "score"} of every candidate); isa also gmm.json and, with save_embeddings,
// embeddings.safetensors. Work is split over every rank of the world and run.threads threads.
#pragma once

#include "config/schema.h"
#include "trainer/stages/stage_env.h"

namespace aligntrain::stages {

StageResult run_select(StageEnv& env, const config::StageConfig& stage);

}  // namespace aligntrain::stages
