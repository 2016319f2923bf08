// The training loop every training stage shares: data order (sampler, DP sharding, micro-batches), gradient
// averaging over the data-parallel group, global grad-norm clipping, AdamW with the stage's LR schedule,
// progress lines and metrics.jsonl, periodic evaluation, checkpoints, resume, and clean stops on SIGTERM/SIGINT.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "config/schema.h"
#include "trainer/metrics/metrics.h"
#include "trainer/model/transformer.h"
#include "trainer/parallel/overlapped_averager.h"
#include "trainer/runtime/communicators.h"
#include "trainer/stages/objective.h"

namespace aligntrain::stages {

struct TrainContext {
  const config::Recipe& recipe;
  const config::StageConfig& stage;
  runtime::Groups& groups;
  at::Device device;
  metrics::MetricsLog& metrics;
  model::CausalLM& lm;
  std::string tokenizer_dir;                // copied into checkpoints for export
  std::function<StepMetrics()> evaluate;    // eval-split metrics ("eval/..."); empty: no eval split
  // LoRA: the frozen base's origin (checkpoint::TrainState::frozen_base); checkpoints then hold only the trainable
  // parameters, and a resume checks that the base is still the same. Null: checkpoints hold every parameter.
  nlohmann::json frozen_base = nullptr;
};

struct TrainOutcome {
  bool stopped = false;      // a stop signal: a checkpoint was written, the stage is not finished
  int64_t start_step = 0;    // where this run began (> 0 after a resume)
  int64_t steps = 0, total = 0;
  StepMetrics first, last;   // metrics of the first and last step this run logged
  std::optional<StepMetrics> eval_first, eval_last;
  double seconds = 0;
  int64_t tokens = 0;        // tokens this run trained on
  // Host reads of device values (runtime/host_sync.h) in the steps that logged nothing; the step reads values only
  // to log them, so this is 0 for objectives that keep their running sums on the device.
  int64_t unlogged_host_syncs = 0;
  parallel::ReduceTiming reduce;  // time spent on the data-parallel gradient all-reduce (DP > 1)
};

// Optimizer steps of the stage: train.steps, or train.epochs (default 1) passes over the data.
int64_t total_steps(const config::StageConfig& stage, TrainObjective& objective, uint64_t seed);

TrainOutcome train(TrainContext& ctx, TrainObjective& objective);

}  // namespace aligntrain::stages
