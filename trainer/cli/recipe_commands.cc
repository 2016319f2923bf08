// `validate`, `run` and `plan`: the subcommands that start from a recipe. Every rank loads and checks the recipe
// (so every rank can exit on its own verdict without a hang); the ranks agree on the outcome and rank 0 reports.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "config/recipe.h"
#include "common/errors.h"
#include "trainer/cli/commands.h"
#include "trainer/cli/gpu_estimate.h"
#include "trainer/cli/memory_plan.h"
#include "trainer/model/flops.h"
#include "trainer/model/lora.h"
#include "trainer/model/peft_io.h"
#include "trainer/model/recipe_models.h"
#include "trainer/model/model_config.h"
#include "trainer/runtime/logging.h"
#include "trainer/stages/models.h"
#include "trainer/stages/pipeline.h"

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
    for (auto& d : model::check_models(*recipe)) diags.push_back(std::move(d));
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

// `plan --gpu NAME`: per training stage on one GPU, the model FLOPs per token, the expected tokens/s at the assumed
// MFU and the expected memory (gpu_estimate.h). Each row is one line of whitespace-separated fields after the
// stage name, so that scripts (bench/gpu/) can read it.
int print_gpu_estimate(const config::Recipe& recipe, const std::map<std::string, model::ModelConfig>& arch,
                       const PlanArgs& a) {
  if (recipe.parallel.tensor != 1) {
    throw UsageError("plan --gpu estimates one GPU per data-parallel replica (parallel.tensor 1), not tensor " +
                     std::to_string(recipe.parallel.tensor));
  }
  const auto chip = find_chip(a.gpu);
  if (!chip && a.peak_tflops <= 0) {
    throw UsageError("plan --gpu '" + a.gpu + "': not a chip of the built-in table; give its dense bf16 peak with "
                     "--peak-tflops");
  }
  const double peak = a.peak_tflops > 0 ? a.peak_tflops : chip->bf16_tflops;
  const std::string chip_name = chip ? chip->name : a.gpu;
  std::printf("\nGPU estimate: %s, dense bf16 peak %.0f TFLOP/s, assumed MFU %.0f%% (one GPU per rank; tokens/s and\n"
              "memory per GPU; every row of max_len tokens, causal attention over the whole row)\n",
              chip_name.c_str(), peak, 100.0 * a.mfu);
  std::printf("%-18s %-10s %12s %12s %10s %10s %10s %10s %5s\n", "stage", "kind", "GFLOP/token", "tokens/s",
              "state GiB", "frozen GiB", "act GiB", "total GiB", "ckpt");
  for (const auto& s : recipe.stages) {
    if (!config::is_training(s.kind)) continue;
    StageWork w;
    w.policy = arch.at(s.policy);
    for (const auto* ref : {&s.reference, &s.teacher, &s.teacher_reference}) {
      if (*ref && !(*ref)->precompute) {
        // `reference: base`: the policy's own forward with its adapters off, no resident copy; `teacher_reference:
        // base`: the teacher's, resident only when the teacher itself is precomputed.
        const bool base = config::is_policy_base(recipe, (*ref)->model);
        const std::string& name = !base ? (*ref)->model : ref == &s.reference ? s.policy : s.teacher->model;
        w.frozen.push_back(arch.at(name));
        if (!base || (ref == &s.teacher_reference && s.teacher->precompute)) w.resident.push_back(arch.at(name));
      }
    }
    w.rows_per_micro = s.batch.micro * (s.kind == config::StageKind::preference ? 2 : 1);
    w.max_length = s.batch.max_length;
    w.mean_keys = model::causal_mean_keys(s.batch.max_length);
    w.checkpointing = s.activation_checkpointing;
    w.bf16 = recipe.run.precision == config::Precision::bf16;
    w.logits_mib = recipe.parallel.logits_mb;
    const auto e = estimate_stage(w, peak, a.mfu);
    std::printf("%-18s %-10s %12.6g %12.0f %10.2f %10.2f %10.2f %10.2f %5s\n", s.name.c_str(),
                config::to_string(s.kind).c_str(), e.flops_per_token / 1e9, e.tokens_per_s, e.state_gib,
                e.frozen_gib, e.activation_gib, e.total_gib(), w.checkpointing ? "yes" : "no");
  }
  std::printf("GFLOP/token: model FLOPs per trained token, 6·N (N: parameters in matrix products) + attention, plus\n"
              "2·N + attention of each live frozen model (reference, teacher); recomputation not counted. tokens/s =\n"
              "MFU · peak / FLOPs per token. Memory: state = weights (+ fp32 master with bf16), fp32 gradients and\n"
              "AdamW moments; act = what one micro-batch keeps for the backward plus the logits chunks; the CUDA\n"
              "caching allocator's reserve and fragmentation come on top.\n");
  return kExitOk;
}

// LoRA of the model `name` (a declared model, or a stage through its own `lora` or its policy): its settings, if it
// has adapters.
std::optional<model::LoraSettings> lora_of(const config::Recipe& recipe, const std::string& name, int depth = 0) {
  if (const config::ModelSpec* spec = recipe.models.find(name)) {
    if (spec->lora) return stages::lora_settings(*spec->lora);
    if (!spec->adapter.empty()) return model::read_adapter_config(spec->adapter);
    return std::nullopt;
  }
  if (depth > static_cast<int>(recipe.stages.size())) return std::nullopt;
  for (const auto& s : recipe.stages)
    if (s.name == name && config::is_training(s.kind))
      return s.lora ? stages::lora_settings(*s.lora) : lora_of(recipe, s.policy, depth + 1);
  return std::nullopt;
}

// Adapter parameters on one rank: column-parallel targets keep A [r, in] whole and split B [out, r]; row-parallel
// ones split A and keep B whole.
double lora_rank_parameters(const model::ModelConfig& c, const model::LoraSettings& lora, int tp) {
  const double h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim,
               im = c.intermediate_size, r = lora.rank;
  double per_layer = 0;
  for (const auto& t : lora.targets) {
    const double in = t == "o_proj" ? q : t == "down_proj" ? im : h;
    const double out = t == "q_proj" || t == "o_proj" ? (t == "q_proj" ? q : h)
                       : t == "k_proj" || t == "v_proj" ? kv
                       : t == "down_proj" ? h : im;
    per_layer += model::is_column_target(t) ? r * in + r * out / tp : r * in / tp + r * out;
  }
  return per_layer * static_cast<double>(c.num_layers);
}

// The memory-plan description of a training stage on one rank (memory_plan.h).
StageMemoryWork memory_work(const config::Recipe& recipe, const config::StageConfig& s,
                            const std::map<std::string, model::ModelConfig>& arch, int tp, int dp, int accum) {
  const bool bf16 = recipe.run.precision == config::Precision::bf16;
  // A frozen model's dtype: its own `dtype`, else run.precision (stages::frozen_dtype).
  auto frozen_bytes = [&](const std::string& name) {
    const config::ModelSpec* spec = recipe.models.find(name);
    if (spec && spec->dtype) return *spec->dtype == config::Precision::bf16 ? 2.0 : 4.0;
    return bf16 ? 2.0 : 4.0;
  };
  StageMemoryWork w;
  w.policy = arch.at(s.policy);
  w.bytes = bf16 ? 2.0 : 4.0;
  w.master_weights = bf16;
  w.max_length = s.batch.max_length;
  w.accumulation = accum;
  w.tp = tp;
  w.dp = dp;
  w.zero1 = recipe.parallel.zero1;
  w.checkpointing = s.activation_checkpointing;
  w.logits_budget_bytes = int64_t{recipe.parallel.logits_mb} << 20;
  w.bucket_bytes = int64_t{recipe.parallel.bucket_mb} << 20;
  w.evaluates = !s.data.eval.empty();
  int64_t columns = 1;
  switch (s.kind) {
    case config::StageKind::sft: w.path = LossPath::kSft; break;
    case config::StageKind::preference: w.path = LossPath::kResponses; columns = 2; break;
    case config::StageKind::negatives: {
      // The rejected response and K samples; K unset: the generate stage's (one when the samples are a file).
      int k = 1;
      for (const auto& g : recipe.stages)
        if (g.name == s.data.samples) k = g.generation.num_samples;
      w.path = LossPath::kResponses;
      columns = 1 + s.data.num_samples.value_or(k);
      break;
    }
    case config::StageKind::online:  // every prompt's samples in one forward
      w.path = LossPath::kSft;
      columns = s.online.num_samples;
      break;
    case config::StageKind::distill:
      w.path = LossPath::kDistill;
      w.distill_nll_grad = s.loss.kd_ratio < 1.0;
      break;
    default: w.path = LossPath::kResponses; break;  // unpaired: one response column per training forward
  }
  w.rows = s.batch.micro * columns;
  // A training stage's adapters may be its own (`lora`); other stages use the policy's.
  if (const auto lora = lora_of(recipe, config::is_training(s.kind) ? s.name : s.policy)) w.adapter_params = lora_rank_parameters(w.policy, *lora, tp);
  for (const auto* ref : {&s.reference, &s.teacher, &s.teacher_reference}) {
    if (!*ref) continue;
    if (ref == &s.reference && config::is_policy_base(recipe, (*ref)->model)) {
      // The policy with its adapters off: no second copy (precomputed: the base model runs alone first).
      if ((*ref)->precompute) w.precomputed.push_back({w.policy, w.bytes});
      continue;
    }
    if (ref == &s.teacher_reference && config::is_policy_base(recipe, (*ref)->model) && s.teacher) {
      // The teacher with its adapters off: no second copy beside a live teacher; else its base runs alone.
      FrozenModel f{arch.at(s.teacher->model), frozen_bytes(s.teacher->model)};
      if ((*ref)->precompute) w.precomputed.push_back(f);
      else if (s.teacher->precompute) w.live.push_back(f);
      continue;
    }
    FrozenModel f{arch.at((*ref)->model), frozen_bytes((*ref)->model)};
    ((*ref)->precompute ? w.precomputed : w.live).push_back(f);
  }
  if (s.kind == config::StageKind::online)
    for (const auto& r : s.online.rewards)
      if (r.type == config::RewardType::model) w.scorers.push_back({arch.at(r.model), frozen_bytes(r.model)});
  return w;
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
  stages::check_resumable(*recipe, fresh);  // before anything in output_dir is touched
  if (world.is_root()) {
    std::error_code ec;
    fs::create_directories(out_dir, ec);
    if (ec) throw std::runtime_error("cannot create output_dir " + out_dir.string() + ": " + ec.message());
    runtime::add_log_file((out_dir / "aligntrain.log").string());
    write_file_atomic(out_dir / "recipe.resolved.yaml", config::to_yaml(*recipe));
    spdlog::info("{}: valid; resolved recipe written to {}", args.recipe, (out_dir / "recipe.resolved.yaml").string());
  }
  world.barrier();
  return stages::run_pipeline(world, *recipe, fresh);
}

int plan(const runtime::World& world, const RecipeArgs& args, const PlanArgs& plan_args) {
  const int n = plan_args.world_size > 0 ? plan_args.world_size : world.size();
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
  // Parameter counts: a stage's model is the declared model it descends from (training keeps the architecture).
  std::map<std::string, int64_t> params;
  for (const auto& [name, spec] : recipe->models.items) params[name] = model::parameter_count(model::model_config_of(spec));
  for (const auto& s : recipe->stages) params[s.name] = params[s.policy];
  const double mib = 1024.0 * 1024.0;
  const bool bf16 = recipe->run.precision == config::Precision::bf16;
  // Communication per optimizer step and rank (ring all-reduce moves 2(p-1)/p of the buffer):
  //   DP: the fp32 gradients of this rank's shard, once per step;
  //   TP: per micro-batch and layer 4 activation all-reduces [micro, max_len, hidden] (2 forward: attention and MLP
  //       outputs; 2 backward: their inputs' gradients), plus 2 for the embedding and the LM head.
  const double ring_dp = dp > 1 ? 2.0 * (dp - 1) / dp : 0.0, ring_tp = tp > 1 ? 2.0 * (tp - 1) / tp : 0.0;
  const double act_bytes = bf16 ? 2.0 : 4.0;
  std::map<std::string, model::ModelConfig> arch;
  for (const auto& [name, spec] : recipe->models.items) arch[name] = model::model_config_of(spec);
  for (const auto& s : recipe->stages) arch[s.name] = arch[s.policy];
  std::vector<std::string> peaks;  // the peak's terms per training stage
  std::vector<std::string> lora_lines;  // LoRA stages: trainable vs frozen parameters, memory against full training
  std::printf("\n%-18s %-10s %-14s %10s %7s %6s %6s %8s %12s %12s %10s %10s %10s %10s\n", "stage", "kind",
              "starts from", "params", "global", "micro", "accum", "max_len", "train MiB", "frozen MiB", "DP MiB",
              "TP MiB", "act MiB", "peak MiB");
  for (const auto& s : recipe->stages) {
    const int accum = s.batch.global / (s.batch.micro * dp);
    // Per rank, sharded over TP: trained weights + fp32 grads + AdamW's two fp32 moments (+ fp32 master weights
    // with bf16 weights); frozen models hold weights only. Activations are not included.
    const double trained = config::is_training(s.kind)
                               ? params[s.policy] * ((bf16 ? 2.0 + 4.0 : 4.0) + 4.0 + 8.0) / tp / mib
                               : 0.0;
    double frozen = config::is_training(s.kind) ? 0.0 : params[s.policy] * (bf16 ? 2.0 : 4.0) / tp / mib;
    for (const auto* ref : {&s.reference, &s.teacher, &s.teacher_reference}) {
      if (*ref && !(*ref)->precompute && !(ref == &s.reference && config::is_policy_base(*recipe, (*ref)->model)))
        frozen += params[(*ref)->model] * (bf16 ? 2.0 : 4.0) / tp / mib;
    }
    if (s.kind == config::StageKind::online)  // reward models (the LM head counted: a small overestimate)
      for (const auto& r : s.online.rewards)
        if (r.type == config::RewardType::model) frozen += params[r.model] * (bf16 ? 2.0 : 4.0) / tp / mib;
    const auto& a = arch[s.policy];
    const bool trains = config::is_training(s.kind);
    const double dp_mib = trains ? params[s.policy] * 4.0 / tp * ring_dp / mib : 0.0;
    const double tp_mib = trains ? (4.0 * a.num_layers + 2.0) * s.batch.micro * s.batch.max_length * a.hidden_size *
                                       act_bytes * ring_tp * accum / mib
                                 : 0.0;
    // Training stages: activations of one micro-batch and the predicted per-rank peak (memory_plan.h).
    std::string act_cell = "-", peak_cell = "-";
    if (trains) {
      const StageMemory m = plan_stage_memory(memory_work(*recipe, s, arch, tp, dp, accum));
      act_cell = fmt::format("{:.1f}", m.activations / mib);
      peak_cell = fmt::format("{:.1f}", m.peak / mib);
      peaks.push_back(fmt::format("  {:<18} {:8.1f} = {:.1f} + {:.1f} + {:.1f} + {:.1f} ({}{})", s.name, m.peak / mib,
                                  m.weights / mib, m.optimizer / mib, m.frozen / mib, m.moment / mib, m.phase,
                                  m.phase == "precompute" ? ", before the policy loads" : ""));
      StageMemoryWork work = memory_work(*recipe, s, arch, tp, dp, accum);
      if (work.adapter_params >= 0) {
        // The same stage with full training: every parameter trains, and `reference: base` is a second copy.
        const double adapters = work.adapter_params;
        work.adapter_params = -1;
        if (s.reference && config::is_policy_base(*recipe, s.reference->model) && !s.reference->precompute)
          work.live.push_back({work.policy, work.bytes});
        const StageMemory full = plan_stage_memory(work);
        const double frozen_params = static_cast<double>(params[s.policy]) / tp;
        lora_lines.push_back(fmt::format(
            "  {:<18} trainable {:.0f} ({:.3f}%), frozen {:.0f}; peak {:.1f} MiB vs {:.1f} MiB with full training "
            "(saves {:.1f} MiB)", s.name, adapters, 100.0 * adapters / (adapters + frozen_params), frozen_params,
            m.peak / mib, full.peak / mib, (full.peak - m.peak) / mib));
      }
    }
    std::printf("%-18s %-10s %-14s %10lld %7d %6d %6d %8d %12.1f %12.1f %10.1f %10.1f %10s %10s\n", s.name.c_str(),
                config::to_string(s.kind).c_str(), s.policy.c_str(), static_cast<long long>(params[s.policy]),
                s.batch.global, s.batch.micro, accum, s.batch.max_length, trained, frozen, dp_mib, tp_mib,
                act_cell.c_str(), peak_cell.c_str());
  }
  std::printf("\nMemory per rank: weights, gradients and AdamW state of the trained model (%s) plus the weights of\n"
              "frozen models (reference, teacher; none when precomputed), all sharded over tensor %d. act MiB: what\n"
              "one micro-batch's forward keeps for the backward (every row max_len tokens). peak MiB: the predicted\n"
              "per-rank peak of tensor memory during the stage: resident state (ZeRO-1 share of the optimizer) plus\n"
              "the largest moment of a step (activations with the LM head's logits chunks, a frozen model's forward,\n"
              "the backward, or the optimizer step); a CPU run records the measured peak as peak_mib. DP/TP MiB: data\n"
              "each rank sends per optimizer step in ring all-reduces (DP: gradients; TP: activations of every\n"
              "micro-batch; frozen models' forwards add their TP share).\n",
              bf16 ? "bf16 weights, fp32 master, grads and moments" : "fp32", tp);
  if (!peaks.empty()) {
    std::printf("\nPeak MiB per rank = weights + AdamW state + frozen models + the step's largest moment (which):\n");
    for (const auto& line : peaks) std::printf("%s\n", line.c_str());
  }
  if (!lora_lines.empty()) {
    std::printf("\nLoRA (per rank; the base is frozen: no gradients, no AdamW state, `reference: base` is no copy):\n");
    for (const auto& line : lora_lines) std::printf("%s\n", line.c_str());
  }
  if (!plan_args.gpu.empty()) return print_gpu_estimate(*recipe, arch, plan_args);
  return kExitOk;
}

}  // namespace aligntrain::cli
