// The pipeline runner behind `aligntrain run`: stages in recipe order, each starting from a declared model or an
// earlier stage's model, each training stage's result saved as <output_dir>/<stage>/model, a DONE marker written
// last. On a rerun, DONE stages are skipped (if the recipe still describes them) and an unfinished stage resumes
// from its newest complete checkpoint; `fresh` removes checkpoints, DONE markers and metrics.jsonl first.
#pragma once

#include "config/schema.h"
#include "trainer/runtime/world.h"

namespace aligntrain::stages {

// Before anything is written: throws UsageError when a DONE stage or the newest complete checkpoint of a stage was
// made by a recipe that differs in a results-changing field (unless `fresh`).
void check_resumable(const config::Recipe& recipe, bool fresh);

// Returns the exit code (0 also when stopped by a signal after writing a checkpoint).
int run_pipeline(const runtime::World& world, const config::Recipe& recipe, bool fresh);

}  // namespace aligntrain::stages
