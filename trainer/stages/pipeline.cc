#include "trainer/stages/pipeline.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <thread>

#include <sys/resource.h>

#include "common/errors.h"
#include "config/recipe.h"
#include "config/resolve.h"
#include "data/example.h"
#include "data/tokenizer.h"
#include "kernels/token_logprobs.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/checkpoint/fingerprint.h"
#include "trainer/metrics/metrics.h"
#include "trainer/metrics/run_reporter.h"
#include "trainer/runtime/communicators.h"
#include "trainer/runtime/cpu_memory.h"
#include "trainer/runtime/cuda_memory.h"
#include "trainer/runtime/device.h"
#include "trainer/runtime/signals.h"
#include "trainer/stages/models.h"
#include "trainer/stages/registry.h"
#include "trainer/stages/stage_env.h"
#include "trainer/stages/stage_state.h"

namespace aligntrain::stages {

namespace fs = std::filesystem;

namespace {

int64_t threads_for(const config::Recipe& recipe) {
  if (recipe.run.threads > 0) return recipe.run.threads;
  int local = 1;
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE", "MPI_LOCALNRANKS"}) {
    if (const char* v = std::getenv(var)) {
      local = std::max(1, std::atoi(v));
      break;
    }
  }
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / local);
}

std::string cell(const nlohmann::json& v, const char* fmt_spec = "{:.4f}") {
  if (v.is_null()) return "-";
  if (v.is_number_float()) return fmt::format(fmt::runtime(fmt_spec), v.get<double>());
  return v.dump();
}

void print_summary(const std::vector<std::pair<std::string, nlohmann::ordered_json>>& rows) {
  auto get = [](const nlohmann::ordered_json& s, const char* key) {
    return s.contains(key) ? s[key] : nlohmann::ordered_json(nullptr);
  };
  spdlog::info("summary:");
  spdlog::info("  {:<18} {:<10} {:>6}  {:>17}  {:>17}  {:>15}  {:>7}  {:>8}", "stage", "kind", "steps", "train loss",
               "eval loss", "eval accuracy", "time", "peak MiB");
  spdlog::info("  {:<18} {:<10} {:>6}  {:>17}  {:>17}  {:>15}  {:>7}  {:>8}", "", "", "", "first -> last",
               "before -> after", "before -> after", "", "");
  for (const auto& [name, s] : rows) {
    const std::string train = cell(get(s, "train_loss_first")) + " -> " + cell(get(s, "train_loss_last"));
    const std::string eval = cell(get(s, "eval_loss_before")) + " -> " + cell(get(s, "eval_loss_after"));
    const std::string acc = cell(get(s, "eval_accuracy_before"), "{:.3f}") + " -> " +
                            cell(get(s, "eval_accuracy_after"), "{:.3f}");
    spdlog::info("  {:<18} {:<10} {:>6}  {:>17}  {:>17}  {:>15}  {:>7}  {:>8}", name, s.value("kind", ""),
                 cell(get(s, "steps")), train, eval, acc, metrics::format_duration(s.value("seconds", 0.0)),
                 cell(get(s, "peak_mib")));
  }
}

// Reads every stage's data files once before any model is loaded, so a malformed line ends the run before hours
// of earlier stages, not after them.
void check_data(const config::Recipe& recipe) {
  for (const auto& stage : recipe.stages) {
    const StageKindEntry* entry = find_stage_kind(stage.kind);
    if (entry == nullptr) continue;
    for (const std::string* path : {&stage.data.train, &stage.data.eval}) {
      if (path->empty() || config::data_file(recipe, *path) != *path) continue;  // made by an earlier stage
      data::ReadOptions ro;
      ro.kind = entry->data_kind(stage);
      ro.skip_invalid = stage.data.skip_invalid;
      data::read_examples(*path, ro);
    }
    if (stage.kind == config::StageKind::select && stage.select.method == config::SelectMethod::zip_fit)
      data::read_examples(stage.select.target, {});
  }
}

}  // namespace

void check_resumable(const config::Recipe& recipe, bool fresh) {
  if (fresh) return;
  const fs::path out_dir = recipe.run.output_dir;
  for (const auto& stage : recipe.stages) {
    const auto fingerprint = checkpoint::stage_fingerprint(recipe, stage);
    if (finished_summary(recipe, stage.name, fingerprint)) continue;
    if (const auto latest = checkpoint::latest_complete(out_dir / "checkpoints" / stage.name)) {
      require_same_recipe(stage.name, *latest, checkpoint::read_state(*latest).fingerprint, fingerprint);
    }
  }
}

int run_pipeline(const runtime::World& world, const config::Recipe& recipe, bool fresh) {
  for (const auto& stage : recipe.stages) {
    if (find_stage_kind(stage.kind) == nullptr) {
      throw UsageError("stage '" + stage.name + "': " + config::a_stage(stage.kind) + " cannot run yet; this build runs " +
                       runnable_stage_kinds() + " stages");
    }
  }
  check_data(recipe);
  at::set_num_threads(static_cast<int>(threads_for(recipe)));
  kernels::set_logits_budget_bytes(int64_t{recipe.parallel.logits_mb} << 20);
  runtime::install_stop_handlers();
  const fs::path out_dir = recipe.run.output_dir;
  if (world.is_root()) {
    if (fresh) {
      fs::remove_all(out_dir / "checkpoints");
      fs::remove(out_dir / "metrics.jsonl");
      fs::remove_all(out_dir / "tensorboard");
      fs::remove(out_dir / "report.html");
      for (const auto& stage : recipe.stages) fs::remove(done_path(recipe, stage.name));
    }
    bool byte = false;
    for (const auto& [name, spec] : recipe.models.items) byte = byte || spec.tokenizer == config::kByteTokenizer;
    if (byte && !fs::exists(byte_tokenizer_dir(recipe) / "aligntrain_tokenizer.json")) {
      data::save_byte_tokenizer(byte_tokenizer_dir(recipe).string());
    }
  }
  world.barrier();

  const at::Device device = runtime::select_device(std::string(config::name_of(recipe.run.device)), world.local_rank());
  auto groups = runtime::make_groups(world, recipe.parallel.tensor,
                                     device.is_cuda() ? runtime::Device::kCuda : runtime::Device::kCpu);
  spdlog::info("run '{}': {} stage(s), {} rank(s) = tensor {} x data {}, {} on {}, {} thread(s) per rank",
               recipe.run.name, recipe.stages.size(), world.size(), groups.layout.tp, groups.layout.dp,
               config::name_of(recipe.run.precision), device.str(), at::get_num_threads());
  metrics::MetricsLog metrics((out_dir / "metrics.jsonl").string(), world.is_root());
  std::set<std::string> tensorboard_stages;
  for (const auto& stage : recipe.stages)
    if (stage.log.tensorboard) tensorboard_stages.insert(stage.name);
  metrics::RunReporter reporter(out_dir.string(), config::to_yaml(recipe), tensorboard_stages);
  if (world.is_root()) {
    metrics.set_observer(&reporter);
    reporter.refresh();
  }
  StageEnv env{world, recipe, groups, device, metrics};

  std::vector<std::pair<std::string, nlohmann::ordered_json>> rows;
  for (const auto& stage : recipe.stages) {
    const auto fingerprint = checkpoint::stage_fingerprint(recipe, stage);
    if (auto summary = finished_summary(recipe, stage.name, fingerprint)) {
      spdlog::info("[{}] done earlier ({}), skipping", stage.name, done_path(recipe, stage.name).string());
      rows.emplace_back(stage.name, std::move(*summary));
      continue;
    }
    // Data values naming an earlier generate stage mean its output file.
    config::StageConfig stage_run = stage;
    for (std::string* value : {&stage_run.data.train, &stage_run.data.eval, &stage_run.data.samples})
      *value = config::data_file(recipe, *value);
    runtime::reset_cpu_memory_peak();  // each stage's peak from its own start (what `plan` predicts)
    const StageResult result = find_stage_kind(stage.kind)->run(env, stage_run);
    nlohmann::ordered_json summary = result.summary;
    if (!device.is_cuda() && runtime::cpu_memory_tracked()) {
      summary["peak_mib"] = runtime::cpu_memory().peak_bytes >> 20;
      spdlog::info("[{}] peak CPU tensor memory: {} MiB", stage.name, summary["peak_mib"].get<int64_t>());
    }
    if (result.stopped) {
      if (world.is_root()) reporter.refresh();
      spdlog::warn("stopped by signal; `aligntrain run` with the same recipe resumes from the checkpoint");
      return 0;
    }
    if (world.is_root()) {
      write_done(recipe, stage.name, fingerprint, summary);
      reporter.refresh();
    }
    world.barrier();
    rows.emplace_back(stage.name, summary);
  }
  print_summary(rows);
  if (world.is_root()) spdlog::info("report: {}", (out_dir / "report.html").string());
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  spdlog::info("outputs in {} (metrics.jsonl, <stage>/model or, for LoRA, <stage>/adapter); peak memory of rank 0: "
               "{} MiB", out_dir.string(),
               usage.ru_maxrss / 1024);
  if (device.is_cuda()) {
    const auto peak = runtime::cuda_memory_peak(device);
    spdlog::info("peak CUDA memory of rank 0: allocated {} MiB, reserved {} MiB", peak.allocated_bytes >> 20,
                 peak.reserved_bytes >> 20);
  }
  return 0;
}

}  // namespace aligntrain::stages
