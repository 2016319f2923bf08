#include "trainer/stages/train_loop.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <thread>
#include <cmath>
#include <filesystem>
#include <optional>

#include "common/errors.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/checkpoint/fingerprint.h"
#include "trainer/checkpoint/reshard.h"
#include "trainer/model/checkpoint_io.h"
#include "trainer/model/lora.h"
#include "trainer/optim/adamw.h"
#include "trainer/optim/schedule.h"
#include "trainer/parallel/data_parallel.h"
#include "trainer/parallel/overlapped_averager.h"
#include "trainer/runtime/cpu_memory.h"
#include "trainer/runtime/cuda_memory.h"
#include "trainer/runtime/host_sync.h"
#include "trainer/runtime/signals.h"
#include "trainer/stages/stage_state.h"

namespace aligntrain::stages {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Test-only: ALIGNTRAIN_TEST_STEP_DELAY_MS=N pauses N ms after each step, so that a test's kill or stop signal lands
// mid-stage however fast the steps are. It changes no result.
int test_step_delay_ms() {
  const char* v = std::getenv("ALIGNTRAIN_TEST_STEP_DELAY_MS");
  return v ? std::max(0, std::atoi(v)) : 0;
}

// Over the host communicator (the world on the CPU): the flag is a host value, so this never waits for the device.
bool any_rank_stopping(runtime::Communicator& host_world) {
  auto flag = at::full({1}, runtime::stop_requested() ? 1.0 : 0.0, at::kFloat);
  host_world.all_reduce(flag, runtime::ReduceOp::kMax);
  return flag.item<float>() > 0.5f;
}

std::string metric_text(const StepMetrics& m, const std::string& key) {
  for (const auto& [k, v] : m)
    if (k == key) return fmt::format("{:.4f}", v);
  return "-";
}

void log_eval(metrics::MetricsLog& log, const std::string& stage, int64_t step, const StepMetrics& m) {
  nlohmann::ordered_json line;
  line["stage"] = stage;
  line["step"] = step;
  for (const auto& [k, v] : m) line[k] = v;
  log.write(line);
  std::string text;
  for (const auto& [k, v] : m) text += fmt::format("  {} {:.4f}", k, v);
  spdlog::info("[{}] eval at step {}:{}", stage, step, text);
}

}  // namespace

int64_t total_steps(const config::StageConfig& stage, TrainObjective& objective, uint64_t seed) {
  if (stage.train.steps) return *stage.train.steps;
  const int64_t epochs = stage.train.epochs.value_or(1);
  int64_t rows = objective.num_examples();
  if (objective.packing()) {
    data::Sampler sampler(objective.num_examples(), seed);
    rows = data::packed_rows_per_epoch(sampler, objective.lengths(), stage.batch.max_length);
  }
  return data::steps_for_epochs(epochs, rows, stage.batch.global) * std::max<int64_t>(1, objective.steps_per_batch());
}

TrainOutcome train(TrainContext& ctx, TrainObjective& objective) {
  const auto& stage = ctx.stage;
  auto& groups = ctx.groups;
  const uint64_t seed = static_cast<uint64_t>(ctx.recipe.run.seed);
  TrainOutcome out;
  out.total = total_steps(stage, objective, seed);

  // The trainable parameters of the policy's parameter set (frozen ones get no gradient and no optimizer state);
  // norms for clipping know their TP sharding.
  const model::ParameterSet& param_set = ctx.lm.parameter_set();
  std::vector<optim::ParamGroupEntry> params = optim::trainable_entries(param_set);
  optim::AdamWOptions ao;
  ao.weight_decay = stage.optimizer.weight_decay;
  ao.beta1 = stage.optimizer.betas[0];
  ao.beta2 = stage.optimizer.betas[1];
  ao.eps = stage.optimizer.eps;
  optim::AdamW optimizer(params, ao, ctx.recipe.parallel.zero1 ? groups.dp.get() : nullptr);
  std::vector<at::Tensor> param_tensors;
  for (const auto& p : params) param_tensors.push_back(p.param);
  // Gradient averaging over the data-parallel group: overlapped with the last micro-batch's backward pass, or after
  // it (the same buckets and arithmetic, so the same bits either way).
  const int64_t bucket_bytes = int64_t{ctx.recipe.parallel.bucket_mb} << 20;
  const bool overlap = groups.layout.dp > 1 && ctx.recipe.parallel.overlap_grad_reduce;
  parallel::GradientAverager averager(param_tensors, *groups.dp, bucket_bytes);
  std::optional<parallel::OverlappedAverager> overlapped;
  if (overlap) overlapped.emplace(param_tensors, *groups.dp, bucket_bytes);
  parallel::ReduceTiming after_backward;  // the non-overlapped path's time
  const auto norm_params = parallel::norm_params(param_set);
  const double base_lr = stage.optimizer.lr.value_or(config::default_lr(stage.kind));

  // Resume from the newest complete checkpoint of this stage, if the recipe still describes the same training.
  const fs::path ckpt_dir = fs::path(ctx.recipe.run.output_dir) / "checkpoints" / stage.name;
  const auto fingerprint = checkpoint::stage_fingerprint(ctx.recipe, stage);
  const checkpoint::ShardLayout layout{groups.layout.tp, groups.layout.dp,
                                       ctx.recipe.parallel.zero1 && groups.layout.dp > 1};
  // What a checkpoint holds of the model: every parameter, or (LoRA) the trainable ones, the frozen base being
  // re-read from its origin (ctx.frozen_base) when the stage starts.
  checkpoint::NamedTensors checkpointed;
  std::vector<model::TensorSpec> checkpointed_specs;
  for (const auto& p : param_set) {
    if (!ctx.frozen_base.is_null() && !p.trainable) continue;
    checkpointed.emplace_back(p.name(), p.tensor);
    checkpointed_specs.push_back(p.spec);
  }
  int64_t step = 0, cursor = 0;
  if (const auto latest = checkpoint::latest_complete(ckpt_dir)) {
    const auto state = checkpoint::read_state(*latest);
    require_same_recipe(stage.name, *latest, state.fingerprint, fingerprint);
    // A checkpoint without the frozen base resumes only on the same base (one with it holds every parameter).
    if (!state.frozen_base.is_null() && state.frozen_base != ctx.frozen_base) {
      throw DataError(latest->string() + ": written on the frozen base " + state.frozen_base.dump() +
                      ", but the stage's base is now " + ctx.frozen_base.dump() + " (its weights changed?); run with "
                      "--fresh or remove " + ckpt_dir.string() + " to start the stage over");
    }
    const auto& saved_model = state.frozen_base.is_null() ? param_set.named_tensors() : checkpointed;
    const checkpoint::ShardLayout saved{state.tp, state.dp, state.zero1 && state.dp > 1};
    checkpoint::NamedTensors optim_state;
    if (saved == layout) {
      optim_state = checkpoint::load_rank(*latest, groups.layout.rank, saved_model);
    } else {
      checkpoint::ReshardCounts counts;
      optim_state = checkpoint::load_resharded(*latest, state, groups.layout.rank, groups.layout.tp_rank,
                                               groups.layout.tp, saved_model, optimizer.state_layout(),
                                               &counts);
      spdlog::info("[{}] resharded the checkpoint from {} to {}: {} parameters ({} resliced) and {} optimizer "
                   "tensors on this rank", stage.name, checkpoint::describe(saved), checkpoint::describe(layout),
                   counts.parameters, counts.resliced, counts.optimizer_tensors);
    }
    optimizer.load_state(optim_state, state.step);
    objective.load_state(state.objective);
    step = state.step;
    cursor = state.cursor;
    spdlog::info("[{}] resuming from {} (step {}/{}, data position {})", stage.name, latest->string(), step, out.total,
                 cursor);
  }
  ctx.metrics.truncate_after(stage.name, step == 0 ? -1 : step);
  out.start_step = step;
  if (step >= out.total) {
    out.steps = step;
    return out;
  }

  auto write_checkpoint = [&] {
    checkpoint::TrainState st;
    st.step = step;
    st.total_steps = out.total;
    st.cursor = cursor;
    st.tp = groups.layout.tp;
    st.dp = groups.layout.dp;
    st.zero1 = layout.zero1;
    st.fingerprint = fingerprint;
    st.objective = objective.state();
    st.parameters = checkpointed_specs;
    st.lora_scaling = model::lora_scaling(ctx.lm);
    st.frozen_base = ctx.frozen_base;
    const auto w = checkpoint::write_checkpoint(ckpt_dir, st, {checkpointed, optimizer.state_tensors()},
                                                ctx.lm.config(), ctx.tokenizer_dir, *groups.world,
                                                stage.checkpoint.keep_last);
    spdlog::info("[{}] checkpoint step {} written to {} in {:.1f}s", stage.name, step, w.dir.string(), w.seconds);
  };

  if (step == 0 && ctx.evaluate) {
    out.eval_first = ctx.evaluate();
    log_eval(ctx.metrics, stage.name, 0, *out.eval_first);
  }

  data::Sampler sampler(objective.num_examples(), seed);
  const auto t_start = Clock::now();
  spdlog::info("[{}] training {} steps: global batch {}, micro {} x {} data-parallel rank(s), lr {:.2e}", stage.name,
               out.total, stage.batch.global, stage.batch.micro, groups.layout.dp, base_lr);
  bool checkpoint_current = false;
  const int delay_ms = test_step_delay_ms();
  const int64_t per_batch = std::max<int64_t>(1, objective.steps_per_batch());
  std::optional<data::StepRows> batch_rows;  // the rows of the current batch (several steps with per_batch > 1)
  while (step < out.total) {
    const auto t_step = Clock::now();
    if (step % per_batch == 0 || !batch_rows)
      batch_rows = data::plan_step(sampler, cursor, stage.batch.global, objective.packing(), objective.lengths(),
                                   stage.batch.max_length);
    const data::StepRows& rows = *batch_rows;
    const int64_t syncs_before = runtime::host_syncs();
    // Whether this step is logged: the only place where the step reads device values on the host.
    const bool report = (step + 1) % std::max(1, stage.log.every_steps) == 0 || step == 0 || step + 1 == out.total;
    objective.begin_step(rows);
    for (auto& p : param_tensors) p.mutable_grad() = at::Tensor();
    const auto micros = data::micro_batches(rows, groups.layout.dp_rank, groups.layout.dp, stage.batch.micro);
    for (size_t k = 0; k < micros.size(); ++k) {
      // Gradients are final after this micro-batch's backward pass (not armed: all buckets go in finish()).
      if (overlapped && k + 1 == micros.size() && objective.one_backward_per_micro_step()) overlapped->arm();
      objective.micro_step(micros[k]);
    }
    for (auto& p : param_tensors)
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    if (overlapped) {
      overlapped->finish();
    } else if (groups.layout.dp > 1) {
      const auto t_reduce = Clock::now();
      averager.average();
      after_backward.exposed += seconds_since(t_reduce);
      ++after_backward.steps;
    }
    const at::Tensor grad_norm_t =
        stage.optimizer.grad_clip > 0 ? parallel::clip_grad_norm_tensor(norm_params, *groups.tp, stage.optimizer.grad_clip)
                                      : parallel::global_grad_norm_tensor(norm_params, *groups.tp);
    const double lr = optim::learning_rate(stage.schedule, base_lr, step, out.total);
    optimizer.step(lr);
    const StepMetrics m = objective.end_step(report);
    const double grad_norm = report ? runtime::host_value<double>(grad_norm_t) : 0.0;
    if (!report) out.unlogged_host_syncs += runtime::host_syncs() - syncs_before;
    cursor = rows.end;
    ++step;
    checkpoint_current = false;
    const double dt = seconds_since(t_step);
    const int64_t tokens = objective.step_tokens();
    out.tokens += tokens;
    if (report && out.first.empty()) out.first = m;
    if (report) out.last = m;

    const bool last = step == out.total;
    const bool between_batches = step % per_batch == 0;
    if (report) {
      nlohmann::ordered_json line;
      line["stage"] = stage.name;
      line["step"] = step;
      for (const auto& [k, v] : m) line[k] = v;
      line["lr"] = lr;
      line["grad_norm"] = grad_norm;
      line["tokens"] = tokens;
      line["epoch"] = static_cast<double>(cursor) / static_cast<double>(objective.num_examples());
      line["data_position"] = cursor;  // examples drawn from the (global) data stream so far
      line["tokens_per_sec"] = static_cast<double>(tokens) / dt;
      line["elapsed_sec"] = seconds_since(t_start);
      if (ctx.device.is_cuda()) {  // the caching allocator's peaks so far (what bench/gpu/ reports)
        const auto peak = runtime::cuda_memory_peak(ctx.device);
        line["cuda_peak_allocated_mib"] = peak.allocated_bytes >> 20;
        line["cuda_peak_reserved_mib"] = peak.reserved_bytes >> 20;
      }
      if (!ctx.device.is_cuda() && runtime::cpu_memory_tracked())  // CPU tensors' peak since the stage's start
        line["peak_mib"] = runtime::cpu_memory().peak_bytes >> 20;
      ctx.metrics.write(line);
      const double per_step = seconds_since(t_start) / static_cast<double>(step - out.start_step);
      const std::string reward = metric_text(m, "reward");  // online stages
      spdlog::info("[{}] step {}/{} | loss {}{} | lr {:.2e} | grad {:.3f} | {} tok/s | ETA {}", stage.name, step,
                   out.total, metric_text(m, "loss"), reward == "-" ? "" : " | reward " + reward, lr, grad_norm,
                   metrics::format_count(static_cast<double>(out.tokens) / seconds_since(t_start)),
                   metrics::format_duration(per_step * static_cast<double>(out.total - step)));
    }
    if (ctx.evaluate && (last || (stage.eval.every_steps > 0 && step % stage.eval.every_steps == 0))) {
      out.eval_last = ctx.evaluate();
      log_eval(ctx.metrics, stage.name, step, *out.eval_last);
    }
    if (between_batches && (last || (stage.checkpoint.every_steps > 0 && step % stage.checkpoint.every_steps == 0))) {
      write_checkpoint();
      checkpoint_current = true;
    }
    if (delay_ms > 0 && !last) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    if (!last && between_batches && any_rank_stopping(*groups.host)) {
      spdlog::warn("[{}] stop requested (signal {}): writing a checkpoint at step {}", stage.name,
                   runtime::stop_signal(), step);
      if (!checkpoint_current) write_checkpoint();
      out.stopped = true;
      break;
    }
  }
  out.steps = step;
  out.seconds = seconds_since(t_start);
  if (groups.layout.dp > 1) {
    const parallel::ReduceTiming& t = overlapped ? overlapped->timing() : after_backward;
    out.reduce = t;
    spdlog::info("[{}] data-parallel gradient all-reduce ({}): {:.3f} s after the backward pass, {:.3f} s inside it, "
                 "over {} step(s)", stage.name, overlapped ? "overlapped" : "after the backward pass", t.exposed,
                 t.in_backward, t.steps);
  }
  return out;
}

}  // namespace aligntrain::stages
