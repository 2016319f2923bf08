// `validate`, `run` and `plan`: the subcommands that start from a recipe. Every rank loads and checks the recipe
// (so every rank can exit on its own verdict without a hang); the ranks agree on the outcome and rank 0 reports.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <system_error>

#include "config/recipe.h"
#include "trainer/cli/commands.h"
#include "trainer/cli/recipe_models.h"
#include "trainer/runtime/logging.h"

namespace aligntrain::cli {

namespace fs = std::filesystem;

namespace {

// Loads the recipe and runs the checks that need the world size. Returns nothing if there were errors; rank 0
// prints its errors; another rank prints its own only when rank 0 had none (so one report appears, not N).
std::optional<config::Recipe> load_checked(const runtime::World& world, const RecipeArgs& args, int world_size) {
  std::optional<config::Recipe> recipe;
  std::vector<config::Diagnostic> diags;
  try {
    recipe = config::load_recipe(args.recipe, args.overrides);
    diags = config::check_world(*recipe, world_size);
    for (auto& d : check_models(*recipe)) diags.push_back(std::move(d));
  } catch (const config::RecipeError& e) {
    diags = e.diagnostics();
  }
  const bool mine_ok = diags.empty();
  const bool root_ok = world.broadcast_from_root(mine_ok ? 1 : 0) == 1;
  const bool all_ok = world.all_ok(mine_ok);
  if (!mine_ok && (world.is_root() || root_ok)) {
    for (const auto& d : diags) spdlog::error("{}", config::format(d));
    spdlog::error("{}: {} error{}", args.recipe, diags.size(), diags.size() == 1 ? "" : "s");
  }
  if (!all_ok) return std::nullopt;
  return recipe;
}

// Writes `text` to `path` atomically (temporary file, then rename), so a reader never sees a partial file.
void write_file_atomic(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write " + tmp.string());
    out << text;
    out.flush();
    if (!out) throw std::runtime_error("error writing " + tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw std::runtime_error("cannot rename " + tmp.string() + " to " + path.string() + ": " + ec.message());
}

}  // namespace

int validate(const runtime::World& world, const RecipeArgs& args) {
  auto recipe = load_checked(world, args, world.size());
  if (!recipe) return kExitUsage;
  if (world.is_root()) {
    std::fputs(config::to_yaml(*recipe).c_str(), stdout);
    spdlog::info("{}: valid ({} stage{}, world size {})", args.recipe, recipe->stages.size(),
                 recipe->stages.size() == 1 ? "" : "s", world.size());
  }
  return kExitOk;
}

int run(const runtime::World& world, const RecipeArgs& args, bool fresh) {
  auto recipe = load_checked(world, args, world.size());
  if (!recipe) return kExitUsage;
  const fs::path out_dir = recipe->run.output_dir;
  if (world.is_root()) {
    std::error_code ec;
    fs::create_directories(out_dir, ec);
    if (ec) throw std::runtime_error("cannot create output_dir " + out_dir.string() + ": " + ec.message());
    runtime::add_log_file((out_dir / "aligntrain.log").string());
    write_file_atomic(out_dir / "recipe.resolved.yaml", config::to_yaml(*recipe));
    spdlog::info("{}: valid; resolved recipe written to {}", args.recipe, (out_dir / "recipe.resolved.yaml").string());
  }
  world.barrier();
  (void)fresh;
  return not_built(world, "run", "the training engine (stages sft, preference, distill, ...)");
}

int plan(const runtime::World& world, const RecipeArgs& args, int world_size) {
  const int n = world_size > 0 ? world_size : world.size();
  auto recipe = load_checked(world, args, n);
  if (!recipe) return kExitUsage;
  if (!world.is_root()) return kExitOk;
  const int tp = recipe->parallel.tensor;
  const int dp = n / tp;
  std::printf("world size %d = tensor %d x data %d (rank = dp_index * %d + tp_index)\n", n, tp, dp, tp);
  for (int d = 0; d < dp; ++d) {
    std::printf("  data-parallel replica %d: ranks", d);
    for (int t = 0; t < tp; ++t) std::printf(" %d", d * tp + t);
    std::printf("\n");
  }
  std::printf("\n%-20s %-11s %-20s %8s %6s %6s %8s\n", "stage", "kind", "starts from", "global", "micro", "accum",
              "max_len");
  for (const auto& s : recipe->stages) {
    const int accum = s.batch.global / (s.batch.micro * dp);
    std::printf("%-20s %-11s %-20s %8d %6d %6d %8d\n", s.name.c_str(), config::to_string(s.kind).c_str(),
                s.policy.c_str(), s.batch.global, s.batch.micro, accum, s.batch.max_length);
  }
  std::printf("\nPer-rank memory estimates need the model engine, which is not built yet.\n");
  return kExitOk;
}

int not_built(const runtime::World& world, const std::string& command, const std::string& what) {
  if (world.is_root()) {
    spdlog::error("`aligntrain {}` is not available yet: {} is not built in this version.", command, what);
  }
  return kExitUsage;
}

}  // namespace aligntrain::cli
