// `--set KEY=VALUE` overrides, applied to the YAML tree before it is converted.
//
// KEY is a dotted path: map keys, list indices (`stages.0` or `stages[0]`) and list items addressed by
// their `name` (`stages.dpo.loss.beta`). VALUE is parsed as YAML (`0.05`, `true`, `[dpo, sft]`,
// `{model: sft, precompute: true}`; empty = null) and then typed by the same strict conversion as the
// file, so a misspelt key or a wrong type is reported exactly as in the file, with `--set KEY=VALUE` as
// its source. Missing maps along the path are created; a missing list item is an error.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "config/diagnostic.h"
#include "config/yaml_load.h"

namespace aligntrain::config {

// Applies each override in order to `root` (a map). Nodes it adds are recorded in `origins`; problems with
// the override itself (no `=`, a path through a value, no such list item) are appended to `out`.
void apply_overrides(YAML::Node& root, const std::vector<std::string>& overrides, NodeOrigins& origins,
                     Diagnostics& out);

}  // namespace aligntrain::config
