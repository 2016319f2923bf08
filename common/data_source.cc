// See data_source.h.
#include "common/data_source.h"

#include <glob.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

namespace aligntrain {

namespace fs = std::filesystem;

namespace {

bool has_glob_chars(const std::string& value) { return value.find_first_of("*?[") != std::string::npos; }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

bool is_parquet_source(const std::string& value) {
  std::error_code ec;
  return ends_with(value, ".parquet") || fs::is_directory(value, ec);
}

std::vector<std::string> data_source_files(const std::string& value) {
  std::vector<std::string> files;
  std::error_code ec;
  if (fs::is_directory(value, ec)) {
    for (const auto& entry : fs::directory_iterator(value, ec)) {
      std::error_code ec2;
      if (entry.is_regular_file(ec2) && entry.path().extension() == ".parquet") files.push_back(entry.path().string());
    }
  } else if (fs::is_regular_file(value, ec)) {
    files.push_back(value);
  } else if (has_glob_chars(value)) {
    glob_t g{};
    if (glob(value.c_str(), GLOB_NOSORT, nullptr, &g) == 0) {
      for (size_t i = 0; i < g.gl_pathc; ++i) {
        std::error_code ec2;
        if (fs::is_regular_file(g.gl_pathv[i], ec2)) files.emplace_back(g.gl_pathv[i]);
      }
    }
    globfree(&g);
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace aligntrain
