#include "trainer/metrics/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace aligntrain::metrics {

namespace {

// Plot geometry in SVG pixels.
constexpr double kWidth = 520, kLeft = 72, kRight = 20, kTop = 36, kPlotHeight = 210;
constexpr double kLegendRow = 18;
constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                   "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};

std::string num(double v, int decimals = 3) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string repr(double v) {  // exact round trip, for data attributes
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// A tick label with as many significant digits as the tick spacing needs.
std::string tick_label(double v, double step, double max_abs) {
  if (std::fabs(v) < step * 1e-9) return "0";
  const int int_digits = static_cast<int>(std::floor(std::log10(max_abs))) + 1;  // so %g never writes 1e+02
  const int sig = std::clamp(
      std::max(int_digits, static_cast<int>(std::floor(std::log10(max_abs)) - std::floor(std::log10(step))) + 1), 1, 15);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", sig, v);
  return buf;
}

double nice_step(double lo, double hi, int target) {
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

struct Axis {
  double lo, hi;
  std::vector<double> ticks;
  double step;
};

Axis make_axis(double lo, double hi, int target, bool integer) {
  // One value, or values equal but for rounding (0.6931471805599452 and ...453): a range around them.
  if (!(hi - lo > 1e-9 * std::max(std::fabs(lo), std::fabs(hi)))) {
    lo = hi = (lo + hi) / 2;
    const double pad = lo == 0 ? 1.0 : std::fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  double step = nice_step(lo, hi, target);
  if (integer) step = std::max(step, 1.0);
  Axis a;
  a.step = step;
  const double first = std::floor(lo / step + 1e-9) * step, last = std::ceil(hi / step - 1e-9) * step;
  for (int i = 0;; ++i) {
    double t = first + i * step;
    if (std::fabs(t) < step * 1e-9) t = 0;
    char buf[64];  // the decimal the tick stands for (0.1 * 3 is 0.30000000000000004; the tick is 0.3)
    std::snprintf(buf, sizeof buf, "%.12g", t);
    t = std::strtod(buf, nullptr);
    if (t > last + step * 1e-6) break;
    a.ticks.push_back(t);
  }
  if (a.ticks.size() < 2 || !(a.ticks.back() > a.ticks.front()))  // cannot happen for finite input; never divide by 0
    throw std::logic_error("svg_chart: no axis ticks for [" + repr(lo) + ", " + repr(hi) + "]");
  a.lo = a.ticks.front();
  a.hi = a.ticks.back();
  return a;
}

}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::vector<double> nice_ticks(double lo, double hi, int target) { return make_axis(lo, hi, target, false).ticks; }

std::string svg_chart(const Chart& chart) {
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  for (const auto& s : chart.series) {
    if (s.x.size() != s.y.size()) throw std::logic_error("svg_chart: series '" + s.name + "' has unequal x and y");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]))
        throw std::logic_error("svg_chart: series '" + s.name + "' has a non-finite point");
      xmin = std::min(xmin, s.x[i]);
      xmax = std::max(xmax, s.x[i]);
      ymin = std::min(ymin, s.y[i]);
      ymax = std::max(ymax, s.y[i]);
    }
  }
  if (!std::isfinite(xmin)) throw std::logic_error("svg_chart: chart '" + chart.title + "' has no points");
  const Axis ax = make_axis(xmin, xmax, 6, true), ay = make_axis(ymin, ymax, 5, false);
  const double pw = kWidth - kLeft - kRight, ph = kPlotHeight;
  const double bottom = kTop + ph;
  const int per_row = 2;
  const int rows = static_cast<int>((chart.series.size() + per_row - 1) / per_row);
  const double height = bottom + 44 + rows * kLegendRow + 6;
  auto px = [&](double x) { return kLeft + (x - ax.lo) / (ax.hi - ax.lo) * pw; };
  auto py = [&](double y) { return bottom - (y - ay.lo) / (ay.hi - ay.lo) * ph; };

  std::string s;
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"" + num(kWidth, 0) + "\" height=\"" +
       num(height, 0) + "\" viewBox=\"0 0 " + num(kWidth, 0) + " " + num(height, 0) + "\" data-chart=\"" +
       html_escape(chart.id) + "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  s += "<rect x=\"0\" y=\"0\" width=\"" + num(kWidth, 0) + "\" height=\"" + num(height, 0) + "\" fill=\"#ffffff\"/>\n";
  s += "<text x=\"" + num(kWidth / 2, 0) + "\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">" +
       html_escape(chart.title) + "</text>\n";
  // Grid, ticks and tick labels.
  const double xabs = std::max(std::fabs(ax.lo), std::fabs(ax.hi)), yabs = std::max(std::fabs(ay.lo), std::fabs(ay.hi));
  for (const double t : ax.ticks) {
    const std::string x = num(px(t), 2);
    s += "<line x1=\"" + x + "\" y1=\"" + num(kTop, 0) + "\" x2=\"" + x + "\" y2=\"" + num(bottom + 4, 0) +
         "\" stroke=\"#e3e3e3\"/>\n";
    s += "<text class=\"xtick\" x=\"" + x + "\" y=\"" + num(bottom + 16, 0) + "\" text-anchor=\"middle\">" +
         tick_label(t, ax.step, xabs) + "</text>\n";
  }
  for (const double t : ay.ticks) {
    const std::string y = num(py(t), 2);
    s += "<line x1=\"" + num(kLeft - 4, 0) + "\" y1=\"" + y + "\" x2=\"" + num(kLeft + pw, 0) + "\" y2=\"" + y +
         "\" stroke=\"#e3e3e3\"/>\n";
    s += "<text class=\"ytick\" x=\"" + num(kLeft - 7, 0) + "\" y=\"" + num(py(t) + 4, 2) + "\" text-anchor=\"end\">" +
         tick_label(t, ay.step, yabs) + "</text>\n";
  }
  s += "<rect x=\"" + num(kLeft, 0) + "\" y=\"" + num(kTop, 0) + "\" width=\"" + num(pw, 0) + "\" height=\"" + num(ph, 0) +
       "\" fill=\"none\" stroke=\"#888888\"/>\n";
  s += "<text x=\"" + num(kLeft + pw / 2, 0) + "\" y=\"" + num(bottom + 32, 0) + "\" text-anchor=\"middle\">" +
       html_escape(chart.x_label) + "</text>\n";
  s += "<text x=\"14\" y=\"" + num(kTop + ph / 2, 0) + "\" text-anchor=\"middle\" transform=\"rotate(-90 14 " +
       num(kTop + ph / 2, 0) + ")\">" + html_escape(chart.y_label) + "</text>\n";
  // The series.
  s += "<g class=\"plot\" data-x-min=\"" + repr(ax.lo) + "\" data-x-max=\"" + repr(ax.hi) + "\" data-y-min=\"" +
       repr(ay.lo) + "\" data-y-max=\"" + repr(ay.hi) + "\" data-left=\"" + repr(kLeft) + "\" data-top=\"" + repr(kTop) +
       "\" data-width=\"" + repr(pw) + "\" data-height=\"" + repr(ph) + "\">\n";
  for (size_t k = 0; k < chart.series.size(); ++k) {
    const Series& ser = chart.series[k];
    const char* color = kColors[static_cast<size_t>(ser.color >= 0 ? ser.color : static_cast<int>(k)) %
                                (sizeof kColors / sizeof kColors[0])];
    std::string points;
    for (size_t i = 0; i < ser.x.size(); ++i) {
      if (i) points += ' ';
      points += num(px(ser.x[i])) + "," + num(py(ser.y[i]));
    }
    s += "<polyline data-series=\"" + html_escape(ser.name) + "\" points=\"" + points +
         "\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"1.6\"" +
         (ser.dashed ? " stroke-dasharray=\"5 3\"" : "") + "/>\n";
    if (ser.x.size() <= 40) {  // few points (evaluations): mark each
      for (size_t i = 0; i < ser.x.size(); ++i)
        s += "<circle cx=\"" + num(px(ser.x[i]), 2) + "\" cy=\"" + num(py(ser.y[i]), 2) + "\" r=\"2.5\" fill=\"" +
             color + "\"/>\n";
    }
  }
  s += "</g>\n";
  // Legend: two entries a row under the x-axis label.
  for (size_t k = 0; k < chart.series.size(); ++k) {
    const Series& ser = chart.series[k];
    const char* color = kColors[static_cast<size_t>(ser.color >= 0 ? ser.color : static_cast<int>(k)) %
                                (sizeof kColors / sizeof kColors[0])];
    const double x = kLeft + static_cast<double>(k % per_row) * (pw / per_row);
    const double y = bottom + 50 + static_cast<double>(k / per_row) * kLegendRow;
    s += "<line x1=\"" + num(x, 0) + "\" y1=\"" + num(y - 4, 0) + "\" x2=\"" + num(x + 22, 0) + "\" y2=\"" +
         num(y - 4, 0) + "\" stroke=\"" + color + "\" stroke-width=\"2\"" +
         (ser.dashed ? " stroke-dasharray=\"5 3\"" : "") + "/>\n";
    s += "<text class=\"legend\" x=\"" + num(x + 28, 0) + "\" y=\"" + num(y, 0) + "\">" + html_escape(ser.name) +
         "</text>\n";
  }
  s += "</svg>\n";
  return s;
}

}  // namespace aligntrain::metrics
