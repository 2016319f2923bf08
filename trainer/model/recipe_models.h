// The architecture of each model a recipe declares, known before anything is loaded: an embedded preset with the
// recipe's explicit overrides, or the config.json of an HF model folder. Used to check the recipe against the
// tensor-parallel degree (heads, kv heads, intermediate and vocab sizes must divide) at validate time.
#pragma once

#include "config/recipe.h"
#include "trainer/model/model_config.h"

namespace aligntrain::model {

// Throws UsageError (unknown preset) or DataError (unreadable or unsupported config.json).
ModelConfig model_config_of(const config::ModelSpec& spec);

// One diagnostic per model whose architecture cannot be read, or does not divide by parallel.tensor, and per
// online reward model that is not a sequence classifier with one label (classifier_config.h).
config::Diagnostics check_models(const config::Recipe& recipe);

}  // namespace aligntrain::model
