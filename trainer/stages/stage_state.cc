// See stage_state.h.
#include "trainer/stages/stage_state.h"

#include <fstream>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "trainer/checkpoint/fingerprint.h"

namespace aligntrain::stages {

namespace fs = std::filesystem;


fs::path done_path(const config::Recipe& recipe, const std::string& stage) {
  return fs::path(recipe.run.output_dir) / stage / "DONE";
}

std::optional<nlohmann::ordered_json> finished_summary(const config::Recipe& recipe, const std::string& stage,
                                                       const nlohmann::json& fingerprint) {
  const fs::path done = done_path(recipe, stage);
  if (!fs::exists(done)) return std::nullopt;
  nlohmann::ordered_json marker;
  try {
    std::ifstream(done) >> marker;
  } catch (const nlohmann::json::exception& e) {
    throw DataError(done.string() + ": unreadable DONE marker (" + e.what() + "); run with --fresh");
  }
  const nlohmann::json stored = marker.contains("fingerprint") ? nlohmann::json(marker["fingerprint"])
                                                                : nlohmann::json::object();
  if (const auto diff = checkpoint::fingerprint_difference(stored, fingerprint)) {
    throw UsageError("stage '" + stage + "' finished earlier with a different recipe (" + *diff +
                     "); run with --fresh to start over, or use a new run.output_dir");
  }
  return marker.value("summary", nlohmann::ordered_json::object());
}

void require_same_recipe(const std::string& stage, const fs::path& checkpoint, const nlohmann::json& stored,
                         const nlohmann::json& current) {
  if (const auto diff = checkpoint::fingerprint_difference(stored, current)) {
    throw UsageError("cannot resume stage '" + stage + "' from " + checkpoint.string() +
                     ": the recipe changed in a field that changes results (" + *diff +
                     "). Restore it, or run with --fresh to start over");
  }
}

void write_done(const config::Recipe& recipe, const std::string& stage, const nlohmann::json& fingerprint,
                const nlohmann::ordered_json& summary) {
  const fs::path done = done_path(recipe, stage);
  fs::create_directories(done.parent_path());
  nlohmann::ordered_json marker;
  marker["fingerprint"] = fingerprint;
  marker["summary"] = summary;
  write_file_atomic(done.string(), marker.dump(2) + "\n");
}

}  // namespace aligntrain::stages
