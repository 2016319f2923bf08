// Recipe → YAML text, walking the field tables of fields.h: every applicable field is written, so a
// resolved recipe shows every default in effect. Keys that do not apply to a stage's kind or loss types,
// unset optionals and empty strings (which mean "none") are left out. Loading the output gives an equal
// Recipe.
#pragma once

#include <string>

#include "config/schema.h"

namespace aligntrain::config {

std::string emit_yaml(const Recipe& recipe);

}  // namespace aligntrain::config
