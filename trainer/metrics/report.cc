#include "trainer/metrics/report.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "trainer/metrics/metrics.h"
#include "trainer/metrics/svg_plot.h"

namespace aligntrain::metrics {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path.string() + ": cannot open for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void read_recipe(RunRecord& run, const fs::path& path) {
  run.recipe_yaml = read_text(path);
  YAML::Node root;
  try {
    root = YAML::Load(run.recipe_yaml);
  } catch (const YAML::Exception& e) {
    throw DataError(path.string() + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                    ": not valid YAML (" + e.msg + ")");
  }
  try {
    if (root["run"] && root["run"]["name"]) run.run_name = root["run"]["name"].as<std::string>();
    const YAML::Node stages = root["stages"];
    if (!stages || !stages.IsSequence())
      throw DataError(path.string() + ": no `stages` list; is this a recipe.resolved.yaml written by `aligntrain run`?");
    for (size_t i = 0; i < stages.size(); ++i) {
      const YAML::Node s = stages[i];
      if (!s.IsMap() || !s["name"] || !s["kind"])
        throw DataError(path.string() + ": stages[" + std::to_string(i) + "]: needs `name` and `kind`");
      run.stages.push_back({s["name"].as<std::string>(), s["kind"].as<std::string>()});
    }
  } catch (const YAML::Exception& e) {
    throw DataError(path.string() + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                    ": " + e.msg);
  }
}

void read_metrics(RunRecord& run, const fs::path& path) {
  if (!fs::exists(path)) return;
  const std::string text = read_text(path);
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    const size_t end = text.find('\n', pos);
    const bool complete = end != std::string::npos;
    const std::string line = text.substr(pos, complete ? end - pos : std::string::npos);
    pos = complete ? end + 1 : text.size();
    ++line_no;
    if (line.empty()) continue;
    ordered_json j;
    try {
      j = ordered_json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      if (!complete) break;  // the last line, cut short by a kill: the run resumes by dropping it
      throw DataError(path.string() + ":" + std::to_string(line_no) + ": not valid JSON (" + e.what() + ")");
    }
    if (!j.is_object() || !j.contains("stage") || !j["stage"].is_string() || !j.contains("step") ||
        !j["step"].is_number_integer())
      throw DataError(path.string() + ":" + std::to_string(line_no) +
                      ": a metrics line needs a string \"stage\" and an integer \"step\"");
    run.lines.push_back(std::move(j));
  }
}

void read_summaries(RunRecord& run) {
  for (const auto& stage : run.stages) {
    const fs::path done = fs::path(run.dir) / stage.name / "DONE";
    if (!fs::exists(done)) continue;
    ordered_json marker;
    try {
      marker = ordered_json::parse(read_text(done));
    } catch (const nlohmann::json::exception& e) {
      throw DataError(done.string() + ": unreadable DONE marker (" + e.what() + ")");
    }
    run.summaries[stage.name] =
        marker.is_object() && marker.contains("summary") ? marker["summary"] : ordered_json::object();
  }
}

// ---- formatting -------------------------------------------------------------------------------------------

std::string fmt_num(double v, const char* spec = "%.6g") {
  char buf[64];
  std::snprintf(buf, sizeof buf, spec, v);
  return buf;
}

std::string cell(const ordered_json& s, const char* key, const char* spec = "%.4f") {
  if (!s.contains(key) || s[key].is_null()) return "-";
  if (s[key].is_number_float()) return fmt_num(s[key].get<double>(), spec);
  if (s[key].is_string()) return html_escape(s[key].get<std::string>());
  return html_escape(s[key].dump());
}

std::string json_value(const ordered_json& v) {
  if (v.is_number_float()) return fmt_num(v.get<double>());
  if (v.is_string()) return html_escape(v.get<std::string>());
  return html_escape(v.dump());
}

// ---- chart grouping ---------------------------------------------------------------------------------------

struct Group {
  const char* id;
  const char* title;
  const char* y_label;
};

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// The chart a metric goes on, by its name without "eval/"; nullptr: a chart of its own.
const Group* group_of(const std::string& base) {
  static const Group loss{"loss", "Loss", "loss"}, ppl{"ppl", "Perplexity", "perplexity"},
      rewards{"rewards", "Rewards (chosen, rejected, margin)", "reward"},
      accuracy{"accuracy", "Reward accuracy (chosen > rejected)", "fraction of pairs"},
      logps{"logps", "Sequence log-probs", "log-prob"}, kl{"kl", "KL and divergences", "divergence"},
      lr{"lr", "Learning rate", "learning rate"}, grad{"grad_norm", "Gradient norm (before clipping)", "norm"},
      speed{"throughput", "Throughput", "tokens / s"};
  if (base == "loss" || starts_with(base, "loss/") || base == "nll" || base == "adpa" || base == "aligndistil")
    return &loss;
  if (base == "ppl") return &ppl;
  if (base == "rewards/chosen" || base == "rewards/rejected" || base == "rewards/margins") return &rewards;
  if (base == "rewards/accuracies") return &accuracy;
  if (starts_with(base, "logps/")) return &logps;
  if (base == "kl" || starts_with(base, "kl/") || starts_with(base, "kd/")) return &kl;
  if (base == "lr") return &lr;
  if (base == "grad_norm") return &grad;
  if (base == "tokens_per_sec") return &speed;
  return nullptr;
}

struct ChartPlan {
  Chart chart;
  std::vector<std::string> keys;
};

std::string stage_section(const StageInfo& stage, const std::vector<const ordered_json*>& lines,
                          const ordered_json* summary) {
  std::string h;
  h += "<section class=\"stage\" id=\"stage-" + html_escape(stage.name) + "\" data-stage=\"" + html_escape(stage.name) +
       "\">\n";
  std::string status;
  if (summary) status = "finished";
  else if (!lines.empty()) status = "not finished (last logged step " + lines.back()->at("step").dump() + ")";
  else status = "not started";
  h += "<h2>Stage " + html_escape(stage.name) + " <span class=\"kind\">" + html_escape(stage.kind) + "</span> — " +
       html_escape(status) + "</h2>\n";
  if (lines.empty()) {
    h += "<p>No metrics logged.</p>\n</section>\n";
    return h;
  }
  // Every numeric metric, in order of first appearance, with its points (step, value).
  std::vector<std::string> keys;
  std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> points;
  std::map<std::string, std::pair<int64_t, const ordered_json*>> latest;
  std::set<int64_t> steps;
  for (const ordered_json* line : lines) {
    const int64_t step = line->at("step").get<int64_t>();
    steps.insert(step);
    for (const auto& [k, v] : line->items()) {
      if (k == "stage" || k == "step") continue;
      latest[k] = {step, &v};
      if (!v.is_number() || !std::isfinite(v.get<double>())) continue;
      auto [it, fresh] = points.try_emplace(k);
      if (fresh) keys.push_back(k);
      it->second.first.push_back(static_cast<double>(step));
      it->second.second.push_back(v.get<double>());
    }
  }
  if (steps.size() > 1) {
    // Charts: the groups in a fixed order, training series before evaluation series.
    std::vector<std::string> ordered;
    for (const auto& k : keys)
      if (!starts_with(k, "eval/")) ordered.push_back(k);
    for (const auto& k : keys)
      if (starts_with(k, "eval/")) ordered.push_back(k);
    std::vector<ChartPlan> charts;
    std::map<std::string, size_t> by_id;
    std::map<size_t, std::vector<std::string>> chart_bases;
    for (const auto& k : ordered) {
      if (!is_plotted_metric(k)) continue;
      const std::string base = starts_with(k, "eval/") ? k.substr(5) : k;
      const Group* g = group_of(base);
      const std::string id = g ? g->id : "metric:" + base;
      auto [it, fresh] = by_id.try_emplace(id, charts.size());
      if (fresh) {
        ChartPlan plan;
        plan.chart.title = g ? g->title : base;
        plan.chart.y_label = g ? g->y_label : base;
        plan.chart.id = stage.name + "/" + id;
        charts.push_back(std::move(plan));
      }
      Series s;
      s.name = k;
      s.x = points[k].first;
      s.y = points[k].second;
      s.dashed = starts_with(k, "eval/");
      // A metric and its eval/ version share a colour (the evaluation dashed).
      auto& bases = chart_bases[it->second];
      const auto b = std::find(bases.begin(), bases.end(), base);
      s.color = static_cast<int>(b - bases.begin());
      if (b == bases.end()) bases.push_back(base);
      charts[it->second].chart.series.push_back(std::move(s));
    }
    static const std::vector<std::string> order = {"loss", "ppl", "rewards", "accuracy", "logps", "kl",
                                                   "lr", "grad_norm", "throughput"};
    auto rank = [&](const ChartPlan& c) {
      const std::string id = c.chart.id.substr(stage.name.size() + 1);
      const auto it = std::find(order.begin(), order.end(), id);
      return it == order.end() ? order.size() : static_cast<size_t>(it - order.begin());
    };
    std::stable_sort(charts.begin(), charts.end(),
                     [&](const ChartPlan& a, const ChartPlan& b) { return rank(a) < rank(b); });
    h += "<div class=\"charts\">\n";
    for (const auto& c : charts) h += svg_chart(c.chart);
    h += "</div>\n";
  } else {
    h += "<p>One logged step (" + std::to_string(*steps.begin()) + "): values below.</p>\n";
  }
  h += "<table class=\"values\"><tr><th>metric</th><th>latest value</th><th>at step</th></tr>\n";
  for (const auto& [k, sv] : latest)
    h += "<tr><td>" + html_escape(k) + "</td><td>" + json_value(*sv.second) + "</td><td>" + std::to_string(sv.first) +
         "</td></tr>\n";
  h += "</table>\n</section>\n";
  return h;
}

std::string summary_table(const RunRecord& run, const std::map<std::string, std::vector<const ordered_json*>>& by_stage) {
  static const std::set<std::string> shown = {"kind", "steps", "train_loss_first", "train_loss_last",
                                              "eval_loss_before", "eval_loss_after", "eval_accuracy_before",
                                              "eval_accuracy_after", "seconds"};
  std::string h = "<table class=\"summary\">\n<tr><th>stage</th><th>kind</th><th>status</th><th>steps</th>"
                  "<th>train loss<br>first → last</th><th>eval loss<br>before → after</th>"
                  "<th>eval accuracy<br>before → after</th><th>time</th><th>other</th></tr>\n";
  for (const auto& stage : run.stages) {
    h += "<tr><td><a href=\"#stage-" + html_escape(stage.name) + "\">" + html_escape(stage.name) + "</a></td><td>" +
         html_escape(stage.kind) + "</td>";
    const auto it = run.summaries.find(stage.name);
    if (it == run.summaries.end()) {
      const auto lines = by_stage.find(stage.name);
      const std::string status = lines == by_stage.end() ? "not started"
                                                          : "running or stopped (last logged step " +
                                                                lines->second.back()->at("step").dump() + ")";
      h += "<td>" + html_escape(status) + "</td><td colspan=\"6\"></td></tr>\n";
      continue;
    }
    const ordered_json& s = it->second;
    std::string other;
    for (const auto& [k, v] : s.items()) {
      if (shown.count(k)) continue;
      if (!other.empty()) other += ", ";
      other += html_escape(k) + " " + json_value(v);
    }
    h += "<td>done</td><td>" + cell(s, "steps") + "</td><td>" + cell(s, "train_loss_first") + " → " +
         cell(s, "train_loss_last") + "</td><td>" + cell(s, "eval_loss_before") + " → " + cell(s, "eval_loss_after") +
         "</td><td>" + cell(s, "eval_accuracy_before", "%.3f") + " → " + cell(s, "eval_accuracy_after", "%.3f") +
         "</td><td>" + (s.contains("seconds") && s["seconds"].is_number() ? format_duration(s["seconds"].get<double>()) : "-") +
         "</td><td>" + other + "</td></tr>\n";
  }
  h += "</table>\n";
  return h;
}

constexpr const char* kStyle = R"(body{font-family:sans-serif;margin:24px;color:#222;background:#fafafa}
h1{margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #ccc;padding-bottom:4px}
.kind{font-size:0.7em;color:#fff;background:#555;border-radius:4px;padding:2px 6px;vertical-align:middle}
.meta{color:#666}table{border-collapse:collapse;margin:8px 0;background:#fff}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}td:first-child,th:first-child{text-align:left}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{border:1px solid #ddd;background:#fff}
pre{background:#fff;border:1px solid #ddd;padding:10px;font-size:12px;overflow-x:auto}
)";

}  // namespace

bool is_plotted_metric(const std::string& key) {
  static const std::set<std::string> not_plotted = {"epoch",       "data_position", "elapsed_sec",
                                                    "tokens",      "eval/tokens",   "eval/examples",
                                                    "eval/exact_match_count"};
  return not_plotted.count(key) == 0;
}

RunRecord read_run(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw UsageError(dir + ": " + (fs::exists(dir, ec) ? "not a folder" : "no such folder") +
                     " (expected a run folder: the run.output_dir of an `aligntrain run`)");
  const fs::path recipe = fs::path(dir) / "recipe.resolved.yaml";
  if (!fs::exists(recipe, ec))
    throw UsageError(dir + ": not a run folder: it has no recipe.resolved.yaml (`aligntrain run` writes one into "
                     "run.output_dir before the first stage)");
  RunRecord run;
  run.dir = dir;
  read_recipe(run, recipe);
  if (run.run_name.empty()) run.run_name = fs::path(dir).filename().string();
  read_metrics(run, fs::path(dir) / "metrics.jsonl");
  for (const auto& line : run.lines) {  // a stage the recipe does not name (a renamed stage's old lines) still shows
    const std::string name = line["stage"].get<std::string>();
    if (std::none_of(run.stages.begin(), run.stages.end(), [&](const StageInfo& s) { return s.name == name; }))
      run.stages.push_back({name, "?"});
  }
  read_summaries(run);
  return run;
}

std::string render_report(const RunRecord& run) {
  std::map<std::string, std::vector<const ordered_json*>> by_stage;
  for (const auto& line : run.lines) by_stage[line["stage"].get<std::string>()].push_back(&line);
  char when[64] = "";
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);

  std::string h = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>aligntrain run " +
                  html_escape(run.run_name) + "</title>\n<style>\n" + kStyle + "</style>\n</head>\n<body>\n";
  h += "<h1>aligntrain run " + html_escape(run.run_name) + "</h1>\n";
  h += "<p class=\"meta\">" + html_escape(run.dir) + " · " + std::to_string(run.summaries.size()) + " of " +
       std::to_string(run.stages.size()) + " stages finished · " + std::to_string(run.lines.size()) +
       " metrics lines · written " + when + "</p>\n";
  h += "<h2>Summary</h2>\n" + summary_table(run, by_stage);
  for (const auto& stage : run.stages) {
    const auto it = by_stage.find(stage.name);
    const auto s = run.summaries.find(stage.name);
    h += stage_section(stage, it == by_stage.end() ? std::vector<const ordered_json*>{} : it->second,
                       s == run.summaries.end() ? nullptr : &s->second);
  }
  h += "<h2>Resolved recipe</h2>\n<pre class=\"recipe\">" + html_escape(run.recipe_yaml) + "</pre>\n</body>\n</html>\n";
  return h;
}

std::string write_report(const RunRecord& run) {
  const std::string path = (fs::path(run.dir) / "report.html").string();
  write_file_atomic(path, render_report(run));
  return path;
}

std::string write_report(const std::string& dir) { return write_report(read_run(dir)); }

}  // namespace aligntrain::metrics
