// metrics.jsonl (DESIGN.md §5) and the console progress line, both written by rank 0 only.
//
// One JSON object per logged step: {"stage", "step", "loss", "lr", "grad_norm", "tokens", "tokens_per_sec",
// ...objective metrics}; evaluation lines carry "eval/..." keys. On resume the lines of the resumed stage after the
// checkpoint's step are dropped first (the file is rewritten through a temporary file), so the file ends up as an
// uninterrupted run's. Timing fields (tokens_per_sec, elapsed_sec) naturally differ between runs.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace aligntrain::metrics {

// Told about every change to metrics.jsonl, after it is made (report.html and TensorBoard files, run_reporter.h).
class MetricsObserver {
 public:
  virtual ~MetricsObserver() = default;
  // A stage (re)starts logging: its lines after `step` were dropped (step < 0: all of them).
  virtual void on_truncate(const std::string& stage, int64_t step) = 0;
  virtual void on_line(const nlohmann::ordered_json& line) = 0;
};

class MetricsLog {
 public:
  // `enabled` false (ranks other than 0): every call is a no-op.
  MetricsLog(std::string path, bool enabled);

  // Keeps lines of other stages and lines of `stage` with step <= `step` (step < 0: none of `stage`).
  void truncate_after(const std::string& stage, int64_t step);
  void write(const nlohmann::ordered_json& line);
  // Not owned; nullptr for none. Called only where the log is enabled.
  void set_observer(MetricsObserver* observer) { observer_ = observer; }

 private:
  std::string path_;
  bool enabled_;
  MetricsObserver* observer_ = nullptr;

  void truncate_file(const std::string& stage, int64_t step);
};

// "1h02m", "3m05s", "12s".
std::string format_duration(double seconds);
// "12.3k", "950", "1.20M".
std::string format_count(double value);

}  // namespace aligntrain::metrics
