// BCO's underlying-distribution matching (METHODS.md C.11): undesirable examples whose prompts look like the
// desirable set's prompts get more weight. Prompts are embedded with the frozen `loss.udm_model` (the mean of its
// final hidden states over the prompt's tokens, the prompt tokenised with that model's own tokenizer and chat
// template), a class-balanced logistic regression (objectives/logistic.h) is fitted on the first
// `prompt_sample_size` desirable and undesirable prompts of the training file, and an undesirable example's weight
// is clamp(p / (1 − p + 1e-8), min_density_ratio, max_density_ratio) with p its prompt's probability of being
// desirable; desirable examples weigh 1.
#pragma once

#include <vector>

#include "config/schema.h"
#include "trainer/stages/responses.h"
#include "trainer/stages/stage_env.h"

namespace aligntrain::stages {

// One weight per example of each set (the first is the training set, which the classifier is fitted on).
// Collective over the world; the embedding model is loaded, used and freed here.
std::vector<std::vector<double>> udm_weights(StageEnv& env, const config::StageConfig& stage,
                                             const std::vector<const ResponseSet*>& sets);

}  // namespace aligntrain::stages
