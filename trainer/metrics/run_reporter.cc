#include "trainer/metrics/run_reporter.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <filesystem>

#include "trainer/metrics/report.h"

namespace aligntrain::metrics {

namespace fs = std::filesystem;

namespace {

bool has_event_files(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return false;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.path().filename().string().rfind("events.out.tfevents.", 0) == 0) return true;
  return false;
}

}  // namespace

RunReporter::RunReporter(std::string out_dir, std::string recipe_yaml, std::set<std::string> tensorboard_stages)
    : out_dir_(std::move(out_dir)),
      recipe_yaml_(std::move(recipe_yaml)),
      tensorboard_stages_(std::move(tensorboard_stages)) {}

std::string RunReporter::tensorboard_dir(const std::string& out_dir, const std::string& stage) {
  return (fs::path(out_dir) / "tensorboard" / stage).string();
}

void RunReporter::open_writer(const std::string& stage, int64_t start_step, bool fresh) {
  writers_.erase(stage);
  const std::string dir = tensorboard_dir(out_dir_, stage);
  const bool first_file = !has_event_files(dir);
  auto writer = std::make_unique<EventFileWriter>(dir);
  if (start_step >= 0) writer->session_start(start_step);
  if (fresh || first_file) writer->add_text(0, "recipe", "```yaml\n" + recipe_yaml_ + "```\n");
  writers_[stage] = std::move(writer);
}

void RunReporter::on_truncate(const std::string& stage, int64_t step) {
  if (!tensorboard_stages_.count(stage)) return;
  try {
    // step < 0: the stage starts over, so everything earlier files hold for it is stale (START at 0).
    open_writer(stage, step < 0 ? 0 : step + 1, step < 0);
  } catch (const std::exception& e) {
    warn(std::string("TensorBoard: ") + e.what());
  }
}

void RunReporter::on_line(const nlohmann::ordered_json& line) {
  const std::string stage = line.value("stage", "");
  if (tensorboard_stages_.count(stage)) {
    try {
      if (!writers_.count(stage)) open_writer(stage, -1, false);
      Scalars values;
      for (const auto& [k, v] : line.items()) {
        if (k == "stage" || k == "step" || !v.is_number()) continue;
        const double d = v.get<double>();
        if (std::isfinite(d)) values.emplace_back(k, static_cast<float>(d));
      }
      writers_[stage]->add_scalars(line.value("step", int64_t{0}), values);
    } catch (const std::exception& e) {
      warn(std::string("TensorBoard: ") + e.what());
    }
  }
  if (std::chrono::steady_clock::now() - last_end_ >= 50 * last_duration_) refresh();
}

void RunReporter::refresh() {
  const auto start = std::chrono::steady_clock::now();
  try {
    write_report(out_dir_);
  } catch (const std::exception& e) {
    warn(std::string("report.html: ") + e.what());
  }
  last_end_ = std::chrono::steady_clock::now();
  last_duration_ = last_end_ - start;
}

void RunReporter::warn(const std::string& what) {
  if (warned_.insert(what).second) spdlog::warn("{} (training goes on; the message is shown once)", what);
}

}  // namespace aligntrain::metrics
