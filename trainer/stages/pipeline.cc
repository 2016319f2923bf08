#include "trainer/stages/pipeline.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <sys/resource.h>

#include "config/resolve.h"
#include "data/example.h"
#include "data/tokenizer.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/checkpoint/fingerprint.h"
#include "trainer/errors.h"
#include "trainer/metrics/metrics.h"
#include "trainer/runtime/communicators.h"
#include "trainer/runtime/device.h"
#include "trainer/runtime/signals.h"
#include "trainer/stages/distill.h"
#include "trainer/stages/inference.h"
#include "trainer/stages/models.h"
#include "trainer/stages/preference.h"
#include "trainer/stages/sft.h"
#include "trainer/stages/stage_env.h"
#include "trainer/stages/train_loop.h"

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

StageResult run_sft(StageEnv& env, const config::StageConfig& stage) {
  const ModelSource src = resolve_model(env.recipe, stage.policy);
  const auto tok = data::load_tokenizer(src.tokenizer_dir);
  const SftData train_data = load_sft_data(stage.data.train, stage, *tok, src.chat_template, src.weights_dir);
  std::optional<SftData> eval;
  if (!stage.data.eval.empty()) eval = load_sft_data(stage.data.eval, stage, *tok, src.chat_template, src.weights_dir);
  spdlog::info("[{}] {} training example(s){}; policy '{}'", stage.name, train_data.examples.size(),
               eval ? fmt::format(", {} eval example(s)", eval->examples.size()) : "", stage.policy);

  auto loaded = load_model(src, env.groups, env.device, policy_dtype(env.recipe));
  loaded.lm->set_activation_checkpointing(stage.activation_checkpointing);
  const auto collate = collate_options(*tok, stage);
  SftObjective objective(*loaded.lm, env.groups, env.device, train_data, collate, stage.data.packing);
  TrainContext ctx{env.recipe, stage, env.groups, env.device, env.metrics, *loaded.lm, src.tokenizer_dir, {}};
  if (eval) {
    ctx.evaluate = [&]() -> StepMetrics {
      const auto e = evaluate_sft(*loaded.lm, env.groups, env.device, *eval, stage.batch.micro, collate);
      return {{"eval/loss", e.loss}, {"eval/ppl", std::exp(e.loss)}, {"eval/tokens", static_cast<double>(e.tokens)}};
    };
  }
  const TrainOutcome outcome = train(ctx, objective);
  if (outcome.stopped) return {{}, true};
  save_model(*loaded.lm, env.groups, stage_model_dir(env.recipe, stage.name), src.tokenizer_dir);
  spdlog::info("[{}] model saved to {}", stage.name, stage_model_dir(env.recipe, stage.name).string());
  return {summary_of(stage, outcome), false};
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
  spdlog::info("  {:<18} {:<10} {:>6}  {:>17}  {:>17}  {:>15}  {:>7}", "stage", "kind", "steps", "train loss",
               "eval loss", "eval accuracy", "time");
  spdlog::info("  {:<18} {:<10} {:>6}  {:>17}  {:>17}  {:>15}  {:>7}", "", "", "", "first -> last", "before -> after",
               "before -> after", "");
  for (const auto& [name, s] : rows) {
    const std::string train = cell(get(s, "train_loss_first")) + " -> " + cell(get(s, "train_loss_last"));
    const std::string eval = cell(get(s, "eval_loss_before")) + " -> " + cell(get(s, "eval_loss_after"));
    const std::string acc = cell(get(s, "eval_accuracy_before"), "{:.3f}") + " -> " +
                            cell(get(s, "eval_accuracy_after"), "{:.3f}");
    spdlog::info("  {:<18} {:<10} {:>6}  {:>17}  {:>17}  {:>15}  {:>7}", name, s.value("kind", ""), cell(get(s, "steps")),
                 train, eval, acc, metrics::format_duration(s.value("seconds", 0.0)));
  }
}

nlohmann::json read_done(const fs::path& done) {
  nlohmann::json marker;
  try {
    std::ifstream(done) >> marker;
  } catch (const nlohmann::json::exception& e) {
    throw DataError(done.string() + ": unreadable DONE marker (" + e.what() + "); run with --fresh");
  }
  return marker;
}

// Reads every stage's data files once before any model is loaded, so a malformed line ends the run before hours
// of earlier stages, not after them.
void check_data(const config::Recipe& recipe) {
  for (const auto& stage : recipe.stages) {
    data::DataKind kind = data::DataKind::kSft;
    if (stage.kind == config::StageKind::preference) kind = data::DataKind::kPreference;
    else if (stage.kind == config::StageKind::unpaired) kind = data::DataKind::kUnpaired;
    else if (stage.kind == config::StageKind::negatives) kind = data::DataKind::kNegatives;
    else if (stage.kind == config::StageKind::generate) kind = data::DataKind::kPrompts;
    else if (stage.kind == config::StageKind::distill) kind = data::DataKind::kAuto;
    else if (stage.kind == config::StageKind::eval &&
             std::any_of(stage.loss.type.begin(), stage.loss.type.end(),
                         [](config::LossType t) { return t != config::LossType::sft; }))
      kind = data::DataKind::kPreference;  // an eval stage with preference losses scores pairs
    else if (stage.kind != config::StageKind::sft && stage.kind != config::StageKind::eval &&
             stage.kind != config::StageKind::distill) continue;
    for (const std::string* path : {&stage.data.train, &stage.data.eval}) {
      if (path->empty() || config::data_file(recipe, *path) != *path) continue;  // made by an earlier stage
      data::ReadOptions ro;
      ro.kind = kind;
      ro.skip_invalid = stage.data.skip_invalid;
      data::read_examples(*path, ro);
    }
  }
}

}  // namespace

void check_resumable(const runtime::World& world, const config::Recipe& recipe, bool fresh) {
  if (fresh) return;
  const int dp = world.size() / std::max(1, recipe.parallel.tensor);
  const fs::path out_dir = recipe.run.output_dir;
  for (const auto& stage : recipe.stages) {
    const auto fingerprint = checkpoint::stage_fingerprint(recipe, stage, dp);
    const fs::path done = out_dir / stage.name / "DONE";
    if (fs::exists(done)) {
      const auto marker = read_done(done);
      if (const auto diff = checkpoint::fingerprint_difference(marker.value("fingerprint", nlohmann::json::object()),
                                                               fingerprint)) {
        throw UsageError("stage '" + stage.name + "' finished earlier with a different recipe (" + *diff +
                         "); run with --fresh to start over, or use a new run.output_dir");
      }
      continue;
    }
    if (const auto latest = checkpoint::latest_complete(out_dir / "checkpoints" / stage.name)) {
      const auto state = checkpoint::read_state(*latest);
      if (const auto diff = checkpoint::fingerprint_difference(state.fingerprint, fingerprint)) {
        throw UsageError("cannot resume stage '" + stage.name + "' from " + latest->string() +
                         ": the recipe changed in a field that changes results (" + *diff +
                         "). Restore it, or run with --fresh to start over");
      }
    }
  }
}

int run_pipeline(const runtime::World& world, const config::Recipe& recipe, bool fresh) {
  for (const auto& stage : recipe.stages) {
    if (stage.kind == config::StageKind::select) {
      throw UsageError("stage '" + stage.name + "': " + config::a_stage(stage.kind) +
                       " cannot run yet; this build runs sft, preference, unpaired, negatives, distill, generate and "
                       "eval stages");
    }
  }
  check_data(recipe);
  at::set_num_threads(static_cast<int>(threads_for(recipe)));
  runtime::install_stop_handlers();
  const fs::path out_dir = recipe.run.output_dir;
  if (world.is_root()) {
    if (fresh) {
      fs::remove_all(out_dir / "checkpoints");
      fs::remove(out_dir / "metrics.jsonl");
      for (const auto& stage : recipe.stages) fs::remove(out_dir / stage.name / "DONE");
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
  StageEnv env{world, recipe, groups, device, metrics};

  std::vector<std::pair<std::string, nlohmann::ordered_json>> rows;
  for (const auto& stage : recipe.stages) {
    const fs::path done = out_dir / stage.name / "DONE";
    const auto fingerprint = checkpoint::stage_fingerprint(recipe, stage, groups.layout.dp);
    if (fs::exists(done)) {
      const auto marker = read_done(done);
      if (const auto diff = checkpoint::fingerprint_difference(marker.value("fingerprint", nlohmann::json::object()),
                                                               fingerprint)) {
        throw UsageError("stage '" + stage.name + "' finished earlier with a different recipe (" + *diff +
                         "); run with --fresh to start over, or use a new run.output_dir");
      }
      spdlog::info("[{}] done earlier ({}), skipping", stage.name, done.string());
      rows.emplace_back(stage.name, marker.value("summary", nlohmann::ordered_json::object()));
      continue;
    }
    // Data values naming an earlier generate stage mean its output file.
    config::StageConfig stage_files = stage;
    for (std::string* value : {&stage_files.data.train, &stage_files.data.eval, &stage_files.data.samples})
      *value = config::data_file(recipe, *value);
    const config::StageConfig& stage_run = stage_files;
    StageResult result;
    if (stage.kind == config::StageKind::sft) result = run_sft(env, stage_run);
    if (stage.kind == config::StageKind::preference) result = run_preference(env, stage_run);
    if (stage.kind == config::StageKind::unpaired) result = run_unpaired(env, stage_run);
    if (stage.kind == config::StageKind::negatives) result = run_negatives(env, stage_run);
    if (stage.kind == config::StageKind::distill) result = run_distill(env, stage_run);
    if (stage.kind == config::StageKind::generate) result.summary = run_generate(env, stage_run);
    if (stage.kind == config::StageKind::eval) result.summary = run_eval(env, stage_run);
    const auto& summary = result.summary;
    if (result.stopped) {
      spdlog::warn("stopped by signal; `aligntrain run` with the same recipe resumes from the checkpoint");
      return 0;
    }
    if (world.is_root()) {
      fs::create_directories(done.parent_path());
      nlohmann::ordered_json marker;
      marker["fingerprint"] = fingerprint;
      marker["summary"] = summary;
      std::ofstream(done) << marker.dump(2) << "\n";
    }
    world.barrier();
    rows.emplace_back(stage.name, summary);
  }
  print_summary(rows);
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  spdlog::info("outputs in {} (metrics.jsonl, <stage>/model); peak memory of rank 0: {} MiB", out_dir.string(),
               usage.ru_maxrss / 1024);
  return 0;
}

}  // namespace aligntrain::stages
