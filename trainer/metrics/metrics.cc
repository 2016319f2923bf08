#include "trainer/metrics/metrics.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace aligntrain::metrics {

namespace fs = std::filesystem;

MetricsLog::MetricsLog(std::string path, bool enabled) : path_(std::move(path)), enabled_(enabled) {}

void MetricsLog::truncate_after(const std::string& stage, int64_t step) {
  if (!enabled_) return;
  truncate_file(stage, step);
  if (observer_) observer_->on_truncate(stage, step);
}

void MetricsLog::truncate_file(const std::string& stage, int64_t step) {
  if (!fs::exists(path_)) return;
  std::ifstream in(path_);
  std::string kept, line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    bool keep = true;
    try {
      const auto j = nlohmann::json::parse(line);
      if (j.value("stage", "") == stage && j.value("step", int64_t{0}) > step) keep = false;
      if (j.value("stage", "") == stage && step < 0) keep = false;
    } catch (const nlohmann::json::exception&) {
      keep = false;  // a line cut short by a kill
    }
    if (keep) kept += line + "\n";
  }
  in.close();
  const std::string tmp = path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << kept;
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  fs::rename(tmp, path_);
}

void MetricsLog::write(const nlohmann::ordered_json& line) {
  if (!enabled_) return;
  std::ofstream out(path_, std::ios::binary | std::ios::app);
  out << line.dump() << "\n";
  out.flush();
  if (!out) throw std::runtime_error("cannot append to " + path_);
  out.close();
  if (observer_) observer_->on_line(line);
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(std::llround(seconds));
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>(s % 3600 / 60));
  } else if (s >= 60) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  }
  return buf;
}

std::string format_count(double v) {
  char buf[32];
  if (v >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  } else if (v >= 1e4) {
    std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  }
  return buf;
}

}  // namespace aligntrain::metrics
