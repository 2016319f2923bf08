// libFuzzer target for recipe loading: bytes as recipe text, and lines as --set overrides.
//
// The first byte picks the mode. Even: the rest is a recipe file. Odd: each line of the rest is a
// `--set KEY=VALUE` applied to a small valid recipe. Either way load_recipe_from_string must return a
// Recipe or throw RecipeError, nothing else; and a recipe that loads must survive the round trip
// to_yaml → load → equal. The virtual recipe lives in config/recipes/ so that its data paths exist when
// the fuzzer runs from the repository root (scripts/fuzz.sh does).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "config/recipe.h"

namespace {

using aligntrain::config::Recipe;
using aligntrain::config::RecipeError;

constexpr const char* kVirtualPath = "config/recipes/fuzz_input.yaml";

constexpr const char* kOverrideTarget = R"(models:
  base: {init: {preset: tiny-llama}}
stages:
  - name: sft
    kind: sft
    policy: base
    data: {train: data/sft_train.jsonl}
  - name: dpo
    kind: preference
    policy: sft
    reference: sft
    data: {train: data/pairs_train.jsonl}
    loss: {type: dpo, beta: 0.1}
)";

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size() && out.size() < 16) {
    const size_t end = text.find('\n', start);
    out.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

void check_round_trip(const Recipe& recipe) {
  const std::string yaml = aligntrain::config::to_yaml(recipe);
  try {
    const Recipe again = aligntrain::config::load_recipe_from_string(yaml, kVirtualPath);
    if (again == recipe) return;
    std::fprintf(stderr, "round trip changed the recipe:\n%s\n", yaml.c_str());
  } catch (const RecipeError& e) {
    std::fprintf(stderr, "resolved recipe does not load again:\n%s\n%s\n", e.what(), yaml.c_str());
  }
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool overrides_mode = data[0] & 1;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    const Recipe recipe = overrides_mode
                              ? aligntrain::config::load_recipe_from_string(kOverrideTarget, kVirtualPath, lines(text))
                              : aligntrain::config::load_recipe_from_string(text, kVirtualPath);
    check_round_trip(recipe);
  } catch (const RecipeError&) {
    // Expected for almost every input.
  }
  return 0;
}
