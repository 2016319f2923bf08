// The reference-based and reference-free stages on top of responses.h:
//   kind: preference   the DPO family on {"prompt", "chosen", "rejected"} (METHODS.md C.1–C.9, C.13): chosen
//                      and rejected go through the policy in ONE forward per micro-batch
//   kind: unpaired     KTO and BCO on {"prompt", "completion", "label"} (C.10, C.11)
//   kind: negatives    D2O on {"prompt", "rejected"} plus K self-generated samples per prompt (C.12)
// Losses are trainer/objectives/preference.h's pure functions; batch means over the global batch.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "data/example.h"

#include "config/schema.h"
#include "data/tokenizer.h"
#include "trainer/stages/responses.h"
#include "trainer/stages/stage_env.h"

namespace aligntrain::stages {

// Reads a stage's data file as `kind`, warning about lines skipped under data.skip_invalid.
std::vector<data::Example> read_stage_examples(const std::string& path, const config::StageConfig& stage,
                                               data::DataKind kind);

// Tokenises `width` responses of each example (prompt + response, truncated per the stage); drops (and counts) an
// example when any of its responses is dropped. Throws DataError when no example is left.
ResponseSet encode_responses(const std::string& path, const config::StageConfig& stage, const data::Tokenizer& tokenizer,
                             const std::string& chat_template, const std::string& model_dir,
                             const std::vector<data::Example>& examples, int64_t width,
                             const std::function<std::vector<const data::Text*>(const data::Example&)>& responses);

// Reads and tokenises a preference file: responses (chosen, rejected). Malformed lines (missing or empty chosen or
// rejected, chosen identical to rejected) are DataErrors naming file:line:field unless data.skip_invalid; a pair
// is dropped (and counted) when either response is dropped by truncation.
ResponseSet load_pair_data(const std::string& path, const config::StageConfig& stage, const data::Tokenizer& tokenizer,
                           const std::string& chat_template, const std::string& model_dir);

StageResult run_preference(StageEnv& env, const config::StageConfig& stage);
StageResult run_unpaired(StageEnv& env, const config::StageConfig& stage);
StageResult run_negatives(StageEnv& env, const config::StageConfig& stage);

}  // namespace aligntrain::stages
