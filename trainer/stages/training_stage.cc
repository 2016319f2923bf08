// See training_stage.h.
#include "trainer/stages/training_stage.h"

#include <ATen/Context.h>
#include <spdlog/spdlog.h>

#include <functional>

#include "data/dealing.h"
#include "trainer/checkpoint/fingerprint.h"

#include "trainer/stages/train_loop.h"

namespace aligntrain::stages {

namespace {

// LoRA: where the frozen base comes from (checkpoint::TrainState::frozen_base): a preset's seed, or the HF folder and
// a digest of its weight files; null without adapters.
nlohmann::json frozen_base_of(const ModelSource& policy) {
  if (!policy.lora) return nullptr;
  if (policy.init) return {{"init_seed", policy.init->seed}};
  return {{"path", policy.weights_dir}, {"digest", checkpoint::weights_digest(policy.weights_dir)}};
}

}  // namespace

StageResult run_training_stage(StageEnv& env, const config::StageConfig& stage, const ModelSource& policy,
                               const BuildTraining& build) {
  auto loaded = load_model(policy, env.groups, env.device, policy_dtype(env.recipe));
  if (policy.lora && policy.lora->dropout > 0) {
    // LoRA dropout draws from the default generators: seeded from the run's seed and the stage (the same on every
    // rank, so tensor-parallel ranks draw the same masks); a resume restores them from the checkpoint.
    at::manual_seed(data::mix64(static_cast<uint64_t>(env.recipe.run.seed) ^ std::hash<std::string>{}(stage.name)));
  }
  loaded.lm->set_activation_checkpointing(stage.activation_checkpointing);
  StageTraining training = build(*loaded.lm);
  TrainContext ctx{env.recipe, stage, env.groups, env.device, env.metrics, *loaded.lm, policy.tokenizer_dir,
                   training.evaluate, frozen_base_of(policy)};
  const TrainOutcome outcome = train(ctx, *training.objective);
  if (outcome.stopped) return {{}, true};
  if (policy.lora) {
    // The adapter in PEFT format; the merged model only on request.
    const auto adapter = stage_adapter_dir(env.recipe, stage.name);
    save_adapter(*loaded.lm, *policy.lora, env.groups, adapter, policy.weights_dir);
    spdlog::info("[{}] adapter saved to {}", stage.name, adapter.string());
    if (!policy.lora_merge) return {summary_of(stage, outcome), false};
  }
  const auto dir = stage_model_dir(env.recipe, stage.name);
  save_model(*loaded.lm, env.groups, dir, policy.tokenizer_dir);
  spdlog::info("[{}] model saved to {}", stage.name, dir.string());
  return {summary_of(stage, outcome), false};
}

}  // namespace aligntrain::stages
