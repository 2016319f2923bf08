// Resolution: after conversion, fill every default that depends on another field (from the tables in
// schema.h) and make every relative path absolute, so that the recipe states exactly what will run.
//
// Relative paths in the recipe file resolve against the recipe's folder; relative paths given with --set
// resolve against the current directory, as a path typed on a command line does. A data value that names
// an earlier generate or select stage is kept as that name (it means the stage's output).
#pragma once

#include "config/schema.h"

namespace aligntrain::config {

void resolve(Recipe& recipe);

// The β a stage's losses use: loss.beta as resolve() filled it (the recipe's value, else default_beta of the first
// loss type that uses β), never a fallback of its own. Throws std::logic_error when one of the types uses β but
// loss.beta is unset (a recipe that has not been through resolve()). A stage none of whose types uses β (orpo, sft,
// kd, dckd, adpa alone) has none: quiet NaN, which no loss reads and which poisons any loss that would.
double resolved_beta(const LossConfig& loss);

// The earlier stage named `name` (index < before), or nullptr.
const StageConfig* earlier_stage(const Recipe& recipe, size_t before, const std::string& name);

// The file a resolved data value refers to: the output file of the generate or select stage it names, else the
// value itself (a path).
std::string data_file(const Recipe& recipe, const std::string& value);

}  // namespace aligntrain::config
