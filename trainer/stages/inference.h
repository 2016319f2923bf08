// Stages that use a model without training it:
//   generate  completions for data.train's prompts (generation settings of the stage) written as JSONL to
//             generation.out, for later stages to train on (ADPA's student responses, D2O's self-samples)
//   eval      held-out token-mean NLL of data.eval's completions and, with eval.exact_match, the fraction of
//             data.eval's prompts whose greedy completion equals the reference completion (whitespace at the ends
//             ignored)
#pragma once

#include <nlohmann/json.hpp>

#include "config/schema.h"
#include "trainer/stages/stage_env.h"

namespace aligntrain::stages {

nlohmann::ordered_json run_generate(StageEnv& env, const config::StageConfig& stage);
nlohmann::ordered_json run_eval(StageEnv& env, const config::StageConfig& stage);

// Greedy completions of `path`'s prompts compared with their reference completions: the exact-match fraction.
// Collective over the world.
struct ExactMatch {
  double accuracy = 0;
  int64_t matched = 0, total = 0;
};
ExactMatch exact_match(StageEnv& env, model::CausalLM& lm, const data::Tokenizer& tok, const std::string& chat_template,
                       const std::string& model_dir, const std::string& path, const config::StageConfig& stage);

}  // namespace aligntrain::stages
