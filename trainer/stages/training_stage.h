// The one path every training stage kind takes: load the policy (trainable, in the policy dtype), let the kind
// build its objective and evaluation around it, train (train_loop.h: resume, checkpoints, metrics), save the model
// as <output_dir>/<stage>/model. The pipeline then writes the stage's DONE marker. A stage kind supplies only what
// differs: its data, its frozen models and its objective.
#pragma once

#include <functional>
#include <memory>

#include "config/schema.h"
#include "trainer/model/transformer.h"
#include "trainer/stages/models.h"
#include "trainer/stages/objective.h"
#include "trainer/stages/stage_env.h"

namespace aligntrain::stages {

struct StageTraining {
  std::unique_ptr<TrainObjective> objective;
  std::function<StepMetrics()> evaluate;  // eval-split metrics ("eval/..."); empty: no eval split
};

// Builds a stage's objective around the loaded policy (which outlives it).
using BuildTraining = std::function<StageTraining(model::CausalLM& policy)>;

StageResult run_training_stage(StageEnv& env, const config::StageConfig& stage, const ModelSource& policy,
                               const BuildTraining& build);

}  // namespace aligntrain::stages
