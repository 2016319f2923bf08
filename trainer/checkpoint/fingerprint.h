// The recipe fingerprint of a training stage: every resolved recipe value that changes the stage's results, as a
// flat map from dotted key to value, plus the contents of its data files. Checkpoints and DONE markers store it;
// resuming compares the stored map with the current one and refuses on the first difference, naming the key.
//
// In the fingerprint: run.seed, run.precision, run.device, parallel.tensor, parallel.zero1, the data-parallel
// degree, the declared model the stage's policy descends from, and every key of the stage except name, log.*,
// checkpoint.* and eval.* (which only change what is reported or saved, not the weights).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "config/schema.h"

namespace aligntrain::checkpoint {

nlohmann::json stage_fingerprint(const config::Recipe& recipe, const config::StageConfig& stage, int dp);

// nullopt when equal; otherwise "KEY: was OLD, now NEW" for the first key that differs.
std::optional<std::string> fingerprint_difference(const nlohmann::json& stored, const nlohmann::json& current);

// FNV-1a 64 of a file's bytes, as 16 hex digits ("missing" when it cannot be read).
std::string file_digest(const std::string& path);
// FNV-1a 64 of `bytes`, as 16 hex digits.
std::string text_digest(std::string_view bytes);

}  // namespace aligntrain::checkpoint
