// Where a stage stands on disk, checked in one place: finished (<output_dir>/<stage>/DONE, holding the recipe
// fingerprint and the summary row), or resumable from a checkpoint whose fingerprint must equal the recipe's.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "config/schema.h"

namespace aligntrain::stages {

std::filesystem::path done_path(const config::Recipe& recipe, const std::string& stage);

// The summary stored in the stage's DONE marker, or nullopt when the stage has not finished. Throws UsageError when
// it finished under a recipe with another fingerprint, DataError for an unreadable marker.
std::optional<nlohmann::ordered_json> finished_summary(const config::Recipe& recipe, const std::string& stage,
                                                       const nlohmann::json& fingerprint);

// Throws UsageError naming the first differing field when a checkpoint's fingerprint is not the recipe's.
void require_same_recipe(const std::string& stage, const std::filesystem::path& checkpoint,
                         const nlohmann::json& stored, const nlohmann::json& current);

// Writes the DONE marker (fingerprint and summary) atomically and durably. Call on one rank.
void write_done(const config::Recipe& recipe, const std::string& stage, const nlohmann::json& fingerprint,
                const nlohmann::ordered_json& summary);

}  // namespace aligntrain::stages
