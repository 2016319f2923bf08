// report.html from a hand-made run folder: every plotted metric is one <polyline> whose points map back (through
// the plot's data-* axis ranges) to the logged steps and values; grouping; a one-step stage gets a table, not
// charts; the recipe is escaped; read errors name the file and line; nice tick values.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "common/errors.h"
#include "test/util/test_env.h"
#include "trainer/metrics/report.h"
#include "trainer/metrics/svg_plot.h"

namespace aligntrain::metrics {
namespace {

namespace fs = std::filesystem;

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

const char* kRecipe =
    "run:\n  name: unit <run>\nstages:\n  - name: sft\n    kind: sft\n  - name: dpo\n    kind: preference\n"
    "  - name: ev\n    kind: eval\n";

fs::path make_run(const std::string& name) {
  const fs::path dir = testing::scratch_dir(name);
  write(dir / "recipe.resolved.yaml", kRecipe);
  std::string m;
  m += R"({"stage":"sft","step":0,"eval/loss":5.5,"eval/tokens":880.0})" "\n";
  m += R"({"stage":"sft","step":1,"loss":5.25,"lr":0.001,"grad_norm":2.0,"tokens":100,"epoch":0.1,"tokens_per_sec":1000.0,"elapsed_sec":0.1})" "\n";
  m += R"({"stage":"sft","step":2,"loss":4.0,"lr":0.002,"grad_norm":1.5,"tokens":100,"epoch":0.2,"tokens_per_sec":1500.0,"elapsed_sec":0.2})" "\n";
  m += R"({"stage":"sft","step":4,"loss":3.125,"lr":0.0015,"grad_norm":1.0,"tokens":100,"epoch":0.4,"tokens_per_sec":1200.0,"elapsed_sec":0.4})" "\n";
  m += R"({"stage":"sft","step":4,"eval/loss":3.5,"eval/tokens":880.0})" "\n";
  m += R"({"stage":"dpo","step":1,"loss":0.69,"rewards/chosen":0.0,"rewards/rejected":0.0,"rewards/accuracies":0.0,"rewards/margins":0.0,"lr":1e-4})" "\n";
  m += R"({"stage":"dpo","step":2,"loss":0.6,"rewards/chosen":0.1,"rewards/rejected":-0.2,"rewards/accuracies":0.75,"rewards/margins":0.3,"lr":1e-4})" "\n";
  m += R"({"stage":"ev","step":0,"eval/loss":3.5,"eval/exact_match":0.25})" "\n";
  write(dir / "metrics.jsonl", m);
  write(dir / "sft" / "DONE", R"({"fingerprint":{},"summary":{"kind":"sft","steps":4,"train_loss_first":5.25,"train_loss_last":3.125,"eval_loss_before":5.5,"eval_loss_after":3.5,"seconds":12.0}})");
  return dir;
}

std::string attr(const std::string& tag, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(tag, m, std::regex(" " + name + "=\"([^\"]*)\""))) return "";
  return m[1];
}

struct Plotted {
  std::string stage, chart;
  std::vector<std::pair<double, double>> points;  // mapped back to (step, value)
};

// Every polyline of the page, with its section's stage and its chart, mapped back through the axes.
std::map<std::string, Plotted> polylines(const std::string& html) {
  std::map<std::string, Plotted> out;
  std::string stage, chart;
  std::map<std::string, double> axes;
  const std::regex tag_re("<(section|svg|g|polyline)\\b[^>]*>");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), tag_re); it != std::sregex_iterator(); ++it) {
    const std::string tag = (*it)[0], kind = (*it)[1];
    if (kind == "section") stage = attr(tag, "data-stage");
    if (kind == "svg") chart = attr(tag, "data-chart");
    if (kind == "g" && attr(tag, "class") == "plot") {
      for (const char* k : {"data-x-min", "data-x-max", "data-y-min", "data-y-max", "data-left", "data-top",
                            "data-width", "data-height"})
        axes[k] = std::stod(attr(tag, k));
    }
    if (kind == "polyline") {
      Plotted p{stage, chart, {}};
      std::stringstream ss(attr(tag, "points"));
      std::string xy;
      while (ss >> xy) {
        const double px = std::stod(xy.substr(0, xy.find(','))), py = std::stod(xy.substr(xy.find(',') + 1));
        const double x = axes["data-x-min"] + (px - axes["data-left"]) / axes["data-width"] *
                                                  (axes["data-x-max"] - axes["data-x-min"]);
        const double y = axes["data-y-min"] + (axes["data-top"] + axes["data-height"] - py) / axes["data-height"] *
                                                  (axes["data-y-max"] - axes["data-y-min"]);
        p.points.emplace_back(x, y);
      }
      const std::string key = stage + ":" + attr(tag, "data-series");
      EXPECT_EQ(out.count(key), 0u) << "two polylines for " << key;
      out[key] = p;
    }
  }
  return out;
}

TEST(Report, OnePolylinePerMetricWithItsPoints) {
  const auto dir = make_run("report_polylines");
  const RunRecord run = read_run(dir.string());
  ASSERT_EQ(run.stages.size(), 3u);
  EXPECT_EQ(run.run_name, "unit <run>");
  const std::string html = render_report(run);
  const auto lines = polylines(html);
  // Expected: every numeric metric of stages with more than one step, except the bookkeeping ones.
  std::map<std::string, std::vector<std::pair<double, double>>> want = {
      {"sft:eval/loss", {{0, 5.5}, {4, 3.5}}},
      {"sft:loss", {{1, 5.25}, {2, 4.0}, {4, 3.125}}},
      {"sft:lr", {{1, 0.001}, {2, 0.002}, {4, 0.0015}}},
      {"sft:grad_norm", {{1, 2.0}, {2, 1.5}, {4, 1.0}}},
      {"sft:tokens_per_sec", {{1, 1000}, {2, 1500}, {4, 1200}}},
      {"dpo:loss", {{1, 0.69}, {2, 0.6}}},
      {"dpo:rewards/chosen", {{1, 0.0}, {2, 0.1}}},
      {"dpo:rewards/rejected", {{1, 0.0}, {2, -0.2}}},
      {"dpo:rewards/accuracies", {{1, 0.0}, {2, 0.75}}},
      {"dpo:rewards/margins", {{1, 0.0}, {2, 0.3}}},
      {"dpo:lr", {{1, 1e-4}, {2, 1e-4}}},
  };
  ASSERT_EQ(lines.size(), want.size());
  for (const auto& [key, pts] : want) {
    ASSERT_TRUE(lines.count(key)) << key;
    const auto& got = lines.at(key).points;
    ASSERT_EQ(got.size(), pts.size()) << key;
    for (size_t i = 0; i < pts.size(); ++i) {
      EXPECT_NEAR(got[i].first, pts[i].first, 1e-3) << key;
      EXPECT_NEAR(got[i].second, pts[i].second, 1e-5 * std::max(1.0, std::fabs(pts[i].second))) << key;
    }
  }
  // Grouping: train and eval loss share a chart; the rewards and margins share one; accuracy has its own.
  EXPECT_EQ(lines.at("sft:loss").chart, "sft/loss");
  EXPECT_EQ(lines.at("sft:eval/loss").chart, "sft/loss");
  EXPECT_EQ(lines.at("dpo:rewards/chosen").chart, "dpo/rewards");
  EXPECT_EQ(lines.at("dpo:rewards/margins").chart, "dpo/rewards");
  EXPECT_EQ(lines.at("dpo:rewards/accuracies").chart, "dpo/accuracy");
  // The one-step eval stage: a table.
  EXPECT_NE(html.find("eval/exact_match</td><td>0.25</td><td>0</td>"), std::string::npos);
  // Summary: sft done with its numbers, dpo not finished; the recipe is escaped.
  EXPECT_NE(html.find("5.2500 → 3.1250"), std::string::npos);
  EXPECT_NE(html.find("running or stopped (last logged step 2)"), std::string::npos);
  EXPECT_NE(html.find("name: unit &lt;run&gt;"), std::string::npos);
  EXPECT_EQ(html.find("unit <run>"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http://") , html.find("http://www.w3.org/2000/svg"));  // no link but the SVG namespace
}

TEST(Report, WriteReplacesTheFile) {
  const auto dir = make_run("report_write");
  write(dir / "report.html", "old");
  const std::string path = write_report(dir.string());
  EXPECT_EQ(path, (dir / "report.html").string());
  std::ifstream in(path);
  std::string first;
  std::getline(in, first);
  EXPECT_EQ(first, "<!DOCTYPE html>");
  EXPECT_FALSE(fs::exists(dir / "report.html.tmp"));
}

TEST(Report, ReadErrors) {
  const auto base = testing::scratch_dir("report_errors");
  try {
    read_run((base / "missing").string());
    FAIL() << "no error for a missing folder";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("missing: no such folder"), std::string::npos) << e.what();
  }
  fs::create_directories(base / "empty");
  try {
    read_run((base / "empty").string());
    FAIL() << "no error for a folder without recipe.resolved.yaml";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("not a run folder"), std::string::npos) << e.what();
  }
  write(base / "bad" / "recipe.resolved.yaml", kRecipe);
  write(base / "bad" / "metrics.jsonl", "{\"stage\":\"sft\",\"step\":1,\"loss\":1.0}\n{\"stage\":\"sft\",\"st\n"
                                        "{\"stage\":\"sft\",\"step\":3,\"loss\":1.0}\n");
  try {
    read_run((base / "bad").string());
    FAIL() << "no error for a broken metrics line";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl:2: not valid JSON"), std::string::npos) << e.what();
  }
  // A last line cut short by a kill is dropped, as a resume drops it.
  write(base / "bad" / "metrics.jsonl", "{\"stage\":\"sft\",\"step\":1,\"loss\":1.0}\n{\"stage\":\"sft\",\"st");
  EXPECT_EQ(read_run((base / "bad").string()).lines.size(), 1u);
  write(base / "bad" / "metrics.jsonl", "{\"stage\":\"sft\",\"loss\":1.0}\n");
  EXPECT_THROW(read_run((base / "bad").string()), DataError);
  write(base / "bad" / "recipe.resolved.yaml", "run: {name: x}\n");
  try {
    read_run((base / "bad").string());
    FAIL() << "no error for a recipe without stages";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("recipe.resolved.yaml: no `stages` list"), std::string::npos) << e.what();
  }
  write(base / "bad" / "recipe.resolved.yaml", "stages: [\n");
  EXPECT_THROW(read_run((base / "bad").string()), DataError);
}

TEST(SvgPlot, NiceTicks) {
  EXPECT_EQ(nice_ticks(0, 100, 5), (std::vector<double>{0, 20, 40, 60, 80, 100}));
  EXPECT_EQ(nice_ticks(0.3, 0.72, 4), (std::vector<double>{0.3, 0.4, 0.5, 0.6, 0.7, 0.8}));
  const auto t = nice_ticks(3.0, 3.0, 5);  // one value: a range around it
  EXPECT_LT(t.front(), 3.0);
  EXPECT_GT(t.back(), 3.0);
  // Values equal but for the last bit (a DPO loss of log 2 at step 0 and step 1): a range around them.
  const auto u = nice_ticks(0.69314718055994518, 0.69314718055994529, 5);
  ASSERT_GE(u.size(), 2u);
  EXPECT_LT(u.front(), 0.69314718055994518);
  EXPECT_GT(u.back(), 0.69314718055994529);
  for (const double lr : {1e-6, 1e-30, -2.5e-7, 0.0}) {
    const auto v = nice_ticks(lr, lr, 5);
    ASSERT_GE(v.size(), 2u) << lr;
    EXPECT_LE(v.front(), lr);
    EXPECT_GE(v.back(), lr);
  }
  const auto w = nice_ticks(1.0, 1.0 + 1e-8, 5);  // a real but tiny spread
  EXPECT_GE(w.size(), 2u);
}

TEST(SvgPlot, TitleTicksAndLegend) {
  Chart c;
  c.title = "Loss";
  c.y_label = "loss";
  c.id = "s/loss";
  c.series.push_back({"loss", {1, 2, 3}, {3, 2, 1}, false});
  c.series.push_back({"eval/loss", {0, 3}, {3.5, 1.5}, true});
  const std::string svg = svg_chart(c);
  EXPECT_NE(svg.find(">Loss</text>"), std::string::npos);
  EXPECT_NE(svg.find("class=\"legend\" x=\"100\" y=\"296\">loss</text>"), std::string::npos) << svg;
  EXPECT_NE(svg.find(">eval/loss</text>"), std::string::npos);
  EXPECT_NE(svg.find("class=\"ytick\""), std::string::npos);
  EXPECT_NE(svg.find(">3.5</text>"), std::string::npos) << svg;  // y ticks 1, 1.5, ..., 3.5
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '\n') > 10, true);
}

}  // namespace
}  // namespace aligntrain::metrics
