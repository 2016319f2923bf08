// The one entry point for recipes: read a YAML file, apply --set overrides, convert strictly, fill derived
// defaults, validate, and either return the Recipe or throw a RecipeError listing every problem found.
// to_yaml writes the fully resolved recipe (recipe.resolved.yaml); loading that text gives an equal Recipe.
#pragma once

#include <string>
#include <vector>

#include "config/diagnostic.h"
#include "config/schema.h"
#include "config/validate.h"

namespace aligntrain::config {

// Loads the recipe file at `path`. Throws RecipeError (all diagnostics) on any problem.
Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides = {});

// The same from text; `virtual_path` names the file in diagnostics and anchors relative paths.
Recipe load_recipe_from_string(const std::string& text, const std::string& virtual_path,
                               const std::vector<std::string>& overrides = {});

// The resolved recipe as YAML, every default explicit.
std::string to_yaml(const Recipe& recipe);

// Field-by-field equality of the recipe's content (run, parallel, models, stages); path, folder and
// sources are not compared.
bool operator==(const Recipe& a, const Recipe& b);
inline bool operator!=(const Recipe& a, const Recipe& b) { return !(a == b); }

}  // namespace aligntrain::config
