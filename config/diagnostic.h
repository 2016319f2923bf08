// Recipe diagnostics: where a problem is (file:line:column, or the --set that introduced it), the key
// path it concerns, and what is wrong. Every recipe error is collected as a Diagnostic; load_recipe
// throws one RecipeError holding all of them.
//
// SourceMap remembers where each loaded key came from, by canonical path (`stages[1].loss.beta`), so
// that cross-field checks that run after conversion can still point at the right line.
#pragma once

#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace aligntrain::config {

struct Location {
  std::string file;  // the recipe file, or "--set KEY=VALUE" for a value from an override
  int line = 0;      // 1-based; 0 = unknown
  int column = 0;    // 1-based; 0 = unknown
};

struct Diagnostic {
  std::string file;
  int line = 0;
  int column = 0;
  std::string path;  // dotted key path naming stages by name: `stages.dpo.loss.beta`
  std::string message;
};

using Diagnostics = std::vector<Diagnostic>;

// `recipe.yaml:12:5: stages.dpo.loss.bta: unknown key (did you mean `beta`?)`
std::string format(const Diagnostic& d);

// All diagnostics, one per line.
std::string format(const Diagnostics& ds);

Diagnostic make_diagnostic(const Location& where, std::string path, std::string message);

class RecipeError : public std::runtime_error {
 public:
  explicit RecipeError(Diagnostics diagnostics);
  const Diagnostics& diagnostics() const { return diagnostics_; }

 private:
  Diagnostics diagnostics_;
};

class SourceMap {
 public:
  void set(const std::string& canonical_path, Location where) { where_[canonical_path] = std::move(where); }
  // The location of the path, or of its nearest recorded parent (`stages[1].loss` for a missing key).
  Location find(const std::string& canonical_path) const;

  // Paths whose value could not be converted: checks that depend on them are skipped.
  void mark_invalid(const std::string& canonical_path) { invalid_.insert(canonical_path); }
  bool is_invalid(const std::string& canonical_path) const { return invalid_.count(canonical_path) != 0; }
  // The path itself or anything inside it (`loss.type[1]` for `loss.type`).
  bool is_invalid_within(const std::string& canonical_path) const;

 private:
  std::map<std::string, Location> where_;
  std::set<std::string> invalid_;
};

}  // namespace aligntrain::config
