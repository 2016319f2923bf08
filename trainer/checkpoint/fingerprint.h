// The recipe fingerprint of a training stage: every resolved recipe value that changes the stage's results, as a
// flat map from dotted key to value, plus the contents of its data files. Checkpoints and DONE markers store it;
// resuming compares the stored map with the current one and refuses on the first difference, naming the key.
//
// In the fingerprint: run.seed, run.precision, run.device, the declared model the stage's policy descends from, and
// every key of the stage except name, log.*, checkpoint.* and eval.* (which only change what is reported or saved, not
// the weights). The layout (parallel.*: tensor and data degrees, ZeRO-1, buckets, overlap) and run.threads are not in
// it: they change results only by floating-point rounding, and a checkpoint resumes on another layout (reshard.h).
// The global batch is (stages.<name>.batch.global), so a resume that would change it is refused naming it.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "config/schema.h"

namespace aligntrain::checkpoint {

nlohmann::json stage_fingerprint(const config::Recipe& recipe, const config::StageConfig& stage);

// nullopt when equal; otherwise "KEY: was OLD, now NEW" for the first key that differs. The layout keys that
// fingerprints stored by earlier versions carry (parallel.tensor, parallel.zero1, the data-parallel degree) are
// ignored.
std::optional<std::string> fingerprint_difference(const nlohmann::json& stored, const nlohmann::json& current);

// FNV-1a 64 of a file's bytes, as 16 hex digits ("missing" when it cannot be read).
std::string file_digest(const std::string& path);
// FNV-1a 64 of `bytes`, as 16 hex digits.
std::string text_digest(std::string_view bytes);
// Digest of an HF model folder's weights: every *.safetensors file's name and file_digest.
std::string weights_digest(const std::string& dir);

}  // namespace aligntrain::checkpoint
