// kind: online — the policy learns from its own samples (METHODS.md §G, §D.2). Each batch of `batch.global` prompts
// is sampled `online.num_samples` times with the stage's generation settings (decoded data-parallel, sharded over
// the tensor-parallel group), scored by the stage's rewards, and trained on for `online.updates_per_batch`
// optimizer steps. Loss types (one per stage):
//   grpo  group-normalised advantages, the clipped per-token ratio against the sampling policy, an optional k3 KL to
//         `reference` (online.beta), aggregated per sequence, per token of the global batch (dapo) or by a
//         constant (dr_grpo), as TRL's GRPOTrainer
//   rloo  leave-one-out advantages with the KL folded into the reward, the clipped sequence ratio, as TRL's
//         RLOOTrainer
//   fdpg  f-DPG (Go et al. 2023; naver/disco): target P(x) = a(x)·b(x) (a = `reference`, b = [reward > 0]) or
//         a(x)·exp(reward/β); pseudo-reward −f′(π/p) with p = P/Z, Z estimated per prompt by a running mean of the
//         importance weights P(x)/q(x), the windowed moving-average baseline; both kept in checkpoints
// GRPO's and RLOO's log-probs are those of the sampling distribution (logits / generation.temperature), as TRL
// computes them; f-DPG's policy and target log-probs are at temperature 1, its proposal q at the sampling temperature.
// Samples come from one noise stream per (batch, prompt, sample), so a resumed run draws the same samples.
// Data: JSONL prompts ({"prompt", ...}); the exact_match reward also needs each line's reference "completion".
#pragma once

#include "config/schema.h"
#include "data/example.h"
#include "trainer/stages/stage_env.h"

namespace aligntrain::stages {

// The data kind an online stage reads: prompts, or prompt/completion pairs when a reward needs the reference.
data::DataKind online_data_kind(const config::StageConfig& stage);

StageResult run_online(StageEnv& env, const config::StageConfig& stage);

}  // namespace aligntrain::stages
