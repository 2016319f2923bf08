// Formatting of recipe diagnostics and the source map used to locate them.
#include "config/diagnostic.h"

#include <fmt/format.h>

namespace aligntrain::config {

std::string format(const Diagnostic& d) {
  std::string out = d.file;
  if (d.line > 0) out += fmt::format(":{}", d.line);
  if (d.line > 0 && d.column > 0) out += fmt::format(":{}", d.column);
  if (!d.path.empty()) out += (out.empty() ? "" : ": ") + d.path;
  return out + (out.empty() ? "" : ": ") + d.message;
}

std::string format(const Diagnostics& ds) {
  std::string out;
  for (const auto& d : ds) {
    out += format(d);
    out += '\n';
  }
  return out;
}

Diagnostic make_diagnostic(const Location& where, std::string path, std::string message) {
  return Diagnostic{where.file, where.line, where.column, std::move(path), std::move(message)};
}

static std::string summary(const Diagnostics& ds) {
  std::string text = fmt::format("recipe has {} error{}:\n", ds.size(), ds.size() == 1 ? "" : "s");
  return text + format(ds);
}

RecipeError::RecipeError(Diagnostics diagnostics)
    : std::runtime_error(summary(diagnostics)), diagnostics_(std::move(diagnostics)) {}

bool SourceMap::is_invalid_within(const std::string& canonical_path) const {
  for (auto it = invalid_.lower_bound(canonical_path); it != invalid_.end(); ++it) {
    if (it->compare(0, canonical_path.size(), canonical_path) != 0) break;
    const std::string rest = it->substr(canonical_path.size());
    if (rest.empty() || rest[0] == '.' || rest[0] == '[') return true;
  }
  return false;
}

Location SourceMap::find(const std::string& canonical_path) const {
  std::string path = canonical_path;
  while (true) {
    auto it = where_.find(path);
    if (it != where_.end()) return it->second;
    auto cut = path.find_last_of(".[");
    if (cut == std::string::npos || cut == 0) break;
    path.resize(cut);
  }
  auto root = where_.find("");
  return root != where_.end() ? root->second : Location{};
}

}  // namespace aligntrain::config
