// Line charts as inline SVG, for report.html: a title, axes with labelled ticks, grid lines, a legend, and one
// <polyline> per series holding exactly its points (no smoothing, no decimation).
//
// Each polyline carries data-series (the series' name, e.g. a metric) and sits in a <g class="plot"> whose
// data-x-min/-max, data-y-min/-max give the axes' value ranges and data-left/-top/-width/-height the plot area in
// SVG pixels, so a point (px, py) maps back to x = x_min + (px - left) / width * (x_max - x_min) and
// y = y_min + (top + height - py) / height * (y_max - y_min).
#pragma once

#include <string>
#include <vector>

namespace aligntrain::metrics {

struct Series {
  std::string name;         // legend text and data-series
  std::vector<double> x, y;  // same length; finite values
  bool dashed = false;       // e.g. evaluation series beside the training series
  int color = -1;            // palette index; -1: the series' position in the chart
};

struct Chart {
  std::string title;
  std::string x_label = "step";
  std::string y_label;
  std::vector<Series> series;  // at least one point in all
  std::string id;              // data-chart attribute (e.g. "sft/loss")
};

// Tick values: "nice" numbers (1, 2 or 5 times a power of ten) covering [lo, hi], about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target);

// The chart as one <svg> element.
std::string svg_chart(const Chart& chart);

// `text` with & < > " ' replaced by entities (for element content and attribute values).
std::string html_escape(const std::string& text);

}  // namespace aligntrain::metrics
