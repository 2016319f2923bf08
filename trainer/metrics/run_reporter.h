// What `aligntrain run` writes beside metrics.jsonl while it runs, on rank 0, as a MetricsLog observer:
//   - report.html (report.h), rewritten atomically at every metrics line — unless the previous rewrite ended less
//     than 50 times its own duration ago, which keeps its cost under 2% of the run's time (a 5,000-line
//     metrics.jsonl takes ~50 ms to chart; a 70-line one ~12 ms) — and always when a stage finishes or stops and at
//     the end;
//   - for the stages with `log.tensorboard: true`, TensorBoard event files in tensorboard/<stage>/ (tensorboard.h):
//     every numeric field of each metrics line as a scalar (same tag, same step, the value rounded to float32), and
//     the resolved recipe as a text summary ("recipe", step 0). Each process that starts or resumes a stage opens a
//     new event file beginning with a SessionLog START at the first step after the resume point, so that
//     TensorBoard drops what an interrupted run logged after its last checkpoint, as metrics.jsonl does.
// Both are views of the run: a failure to write them is logged as a warning and training goes on.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "trainer/metrics/metrics.h"
#include "trainer/metrics/tensorboard.h"

namespace aligntrain::metrics {

class RunReporter : public MetricsObserver {
 public:
  RunReporter(std::string out_dir, std::string recipe_yaml, std::set<std::string> tensorboard_stages);

  void on_truncate(const std::string& stage, int64_t step) override;
  void on_line(const nlohmann::ordered_json& line) override;
  // Rewrites report.html now.
  void refresh();

  static std::string tensorboard_dir(const std::string& out_dir, const std::string& stage);

 private:
  void open_writer(const std::string& stage, int64_t start_step, bool fresh);
  void warn(const std::string& what);

  std::string out_dir_;
  std::string recipe_yaml_;
  std::set<std::string> tensorboard_stages_;
  std::map<std::string, std::unique_ptr<EventFileWriter>> writers_;
  std::set<std::string> warned_;
  std::chrono::steady_clock::time_point last_end_{};
  std::chrono::steady_clock::duration last_duration_{};
};

}  // namespace aligntrain::metrics
