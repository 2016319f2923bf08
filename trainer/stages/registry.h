// The stage kinds the pipeline runs, as a table: for each kind, the data kind of its files (read and checked before
// any model loads) and its runner. Adding a stage kind means one new file with its runner plus one entry here (and
// its recipe fields in config/schema.h); pipeline.cc does not change.
#pragma once

#include "config/schema.h"
#include "data/example.h"
#include "trainer/stages/stage_env.h"

namespace aligntrain::stages {

struct StageKindEntry {
  config::StageKind kind;
  // The kind of example the stage's data files hold.
  data::DataKind (*data_kind)(const config::StageConfig& stage);
  StageResult (*run)(StageEnv& env, const config::StageConfig& stage);
};

// The entry of `kind`; nullptr for a kind the recipe schema knows but this build cannot run yet.
const StageKindEntry* find_stage_kind(config::StageKind kind);

// The kinds that can run, by recipe name ("sft, preference, ..."): for error messages.
std::string runnable_stage_kinds();

}  // namespace aligntrain::stages
