// Strict YAML → Recipe conversion with yaml-cpp.
//
// parse_recipe_yaml turns text into a YAML tree (one document, a map at the top, nesting bounded);
// convert_recipe walks the tree through the field tables of fields.h. Every problem becomes a Diagnostic
// with file:line:column and the key path, and conversion goes on so that all problems are reported
// together: unknown keys (with the nearest valid key), keys that do not apply to the stage kind or loss
// type, duplicate keys, wrong types, unknown enum values, out-of-range numbers and missing required keys.
// Nothing here throws; yaml-cpp's own exceptions are caught and reported.
#pragma once

#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/diagnostic.h"
#include "config/schema.h"

namespace aligntrain::config {

// Nodes that --set overrides put into the tree have no position in the recipe file; this remembers which
// override each came from, so a diagnostic about one names `--set KEY=VALUE` as its source.
class NodeOrigins {
 public:
  void add(const YAML::Node& node, const std::string& label) { nodes_.emplace_back(node, label); }
  std::optional<std::string> find(const YAML::Node& node) const;

 private:
  std::vector<std::pair<YAML::Node, std::string>> nodes_;
};

// Deepest flow ([ ], { }) or compact-sequence (`- - -`) nesting accepted. yaml-cpp parses nesting by
// recursion, so deeper input is rejected before it reaches the parser.
inline constexpr int kMaxYamlNesting = 64;

// A cheap scan for that nesting depth, run before yaml-cpp sees the text.
int yaml_nesting_depth(const std::string& text);

// Parses `text` (a recipe read from `file`). Returns the root map, or nothing with diagnostics added.
std::optional<YAML::Node> parse_recipe_yaml(const std::string& text, const std::string& file, Diagnostics& out);

// Converts the tree into `recipe` (its run, parallel, models and stages; recipe.sources records where
// each key came from). Problems are appended to `out`.
void convert_recipe(const YAML::Node& root, const std::string& file, const NodeOrigins& origins, Recipe& recipe,
                    Diagnostics& out);

// Location of a node: its position in `file`, or the --set that made it.
Location locate(const YAML::Node& node, const std::string& file, const NodeOrigins& origins);

}  // namespace aligntrain::config
