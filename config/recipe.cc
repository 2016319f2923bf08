// load_recipe: parse → overrides → strict conversion → resolution → validation; to_yaml; equality.
#include "config/recipe.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>
#include <type_traits>

#include "config/fields.h"
#include "config/overrides.h"
#include "config/resolve.h"
#include "config/yaml_emit.h"
#include "config/yaml_load.h"

namespace aligntrain::config {
namespace fs = std::filesystem;

namespace {

Diagnostics load_into(Recipe& recipe, const std::string& text, const std::string& file,
                      const std::vector<std::string>& overrides) {
  Diagnostics diags;
  auto root = parse_recipe_yaml(text, file, diags);
  if (!root) return diags;
  NodeOrigins origins;
  apply_overrides(*root, overrides, origins, diags);
  convert_recipe(*root, file, origins, recipe, diags);
  resolve(recipe);
  Diagnostics checks = validate(recipe);
  diags.insert(diags.end(), checks.begin(), checks.end());
  // In file order; problems with --set overrides (no line) come after the file's.
  std::stable_sort(diags.begin(), diags.end(), [&](const Diagnostic& a, const Diagnostic& b) {
    const bool a_file = a.file == file, b_file = b.file == file;
    if (a_file != b_file) return a_file;
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  return diags;
}

}  // namespace

Recipe load_recipe_from_string(const std::string& text, const std::string& virtual_path,
                               const std::vector<std::string>& overrides) {
  Recipe recipe;
  std::error_code ec;
  const fs::path absolute = fs::absolute(virtual_path.empty() ? fs::path("recipe.yaml") : fs::path(virtual_path), ec);
  recipe.path = absolute.lexically_normal().string();
  recipe.folder = absolute.parent_path().lexically_normal().string();
  Diagnostics diags;
  try {
    diags = load_into(recipe, text, virtual_path, overrides);
  } catch (const std::exception& e) {
    // Not expected (yaml-cpp errors are reported as diagnostics); never let another type escape.
    diags.push_back(Diagnostic{virtual_path, 0, 0, "", std::string("internal error while loading: ") + e.what()});
  }
  if (!diags.empty()) throw RecipeError(std::move(diags));
  return recipe;
}

Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path, std::ios::binary);
  std::error_code ec;
  if (!in || fs::is_directory(path, ec))
    throw RecipeError({Diagnostic{path, 0, 0, "", "cannot read the recipe file (does it exist?)"}});
  std::ostringstream text;
  text << in.rdbuf();
  return load_recipe_from_string(text.str(), path, overrides);
}

std::string to_yaml(const Recipe& recipe) { return emit_yaml(recipe); }

// ---------------------------------------------------------------------------------------------
// Equality through the field tables.

namespace {

template <class T>
bool equal(const T& a, const T& b);

template <class T>
bool equal_fields(const T& a, const T& b) {
  // Walk a's fields and b's fields in step; both walks visit the same members in the same order.
  std::vector<const void*> members_of_b;
  Fields<T>::each(b, StageKind::sft, [&](const Key&, const auto& m) { members_of_b.push_back(&m); });
  bool same = true;
  size_t i = 0;
  Fields<T>::each(a, StageKind::sft, [&](const Key&, const auto& m) {
    using M = std::decay_t<decltype(m)>;
    same = same && equal(m, *static_cast<const M*>(members_of_b[i]));
    ++i;
  });
  return same;
}

template <class T>
bool equal(const T& a, const T& b) {
  if constexpr (has_fields<T>::value) {
    return equal_fields(a, b);
  } else if constexpr (std::is_same_v<T, Ordered<ModelSpec>>) {
    if (a.items.size() != b.items.size()) return false;
    for (size_t i = 0; i < a.items.size(); ++i)
      if (a.items[i].first != b.items[i].first || !equal(a.items[i].second, b.items[i].second)) return false;
    return true;
  } else if constexpr (std::is_same_v<T, std::vector<StageConfig>> || std::is_same_v<T, std::vector<RewardSpec>>) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!equal(a[i], b[i])) return false;
    return true;
  } else if constexpr (std::is_same_v<T, std::optional<InitSpec>> || std::is_same_v<T, std::optional<ModelRef>> ||
                       std::is_same_v<T, std::optional<LoraConfig>>) {
    if (a.has_value() != b.has_value()) return false;
    return !a || equal(*a, *b);
  } else {
    return a == b;  // scalars, enums, strings, and optionals / vectors / arrays of those
  }
}

}  // namespace

bool operator==(const Recipe& a, const Recipe& b) { return equal_fields(a, b); }

}  // namespace aligntrain::config
