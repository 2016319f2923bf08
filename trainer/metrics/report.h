// report.html: one self-contained page (inline SVG and CSS, no script, no network) that shows a run at a glance —
// per stage the curves of every metric it logged (grouped: loss, perplexity, rewards, reward accuracy, log-probs,
// KL and divergences, learning rate, gradient norm, throughput; anything else on a chart of its own), the latest
// value of each metric, the pipeline's summary table and the resolved recipe.
//
// Everything comes from the run folder's files: recipe.resolved.yaml (run name, stage names and kinds, shown
// escaped), metrics.jsonl, and each finished stage's <stage>/DONE summary. `aligntrain run` rewrites the page at
// every metrics line and at the end; `aligntrain report RUN_DIR` rewrites it from the files alone.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace aligntrain::metrics {

struct StageInfo {
  std::string name, kind;
};

struct RunRecord {
  std::string dir;
  std::string run_name;
  std::string recipe_yaml;                               // recipe.resolved.yaml as written
  std::vector<StageInfo> stages;                         // recipe order
  std::vector<nlohmann::ordered_json> lines;             // metrics.jsonl, in file order
  std::map<std::string, nlohmann::ordered_json> summaries;  // finished stages: the summary in <stage>/DONE
};

// Reads a run folder. Throws UsageError when `dir` is not a folder or has no recipe.resolved.yaml (not a run
// folder), DataError naming FILE[:LINE] when recipe.resolved.yaml, a metrics line (other than a last line cut short
// by a kill) or a DONE marker cannot be read. A missing metrics.jsonl is a run that has logged nothing yet.
RunRecord read_run(const std::string& dir);

// Metrics not plotted (counters and bookkeeping; shown in the latest-values table only).
bool is_plotted_metric(const std::string& key);

std::string render_report(const RunRecord& run);

// render_report written atomically to <run.dir>/report.html. Returns the file's path.
std::string write_report(const RunRecord& run);
// The same from read_run(dir).
std::string write_report(const std::string& dir);

}  // namespace aligntrain::metrics
