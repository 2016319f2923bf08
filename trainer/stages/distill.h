// kind: distill — a student (the policy) learns from frozen teachers, all sharded over the same tensor-parallel
// group (METHODS.md §A, §B, §D.1). Loss types (one per stage):
//   kd           (1 − kd_ratio)·NLL + kd_ratio·D(teacher ‖ student), D = forward_kl | reverse_kl | jsd | tvd at
//                `temperature`, token mean over the completion tokens of the global batch, on the data's
//                completions or (with probability lmbda per step, GKD) on completions the student samples itself
//                with the stage's generation settings. Data: {"prompt", "completion"} (or "chosen" of pairs).
//   dckd         sft_weight·NLL(chosen) + chosen_distil_weight·KL_k+1(chosen) + rejected_distil_weight·KL_k+1(rejected)
//                over the teacher's top-k table plus a rest bin. Data: {"prompt", "chosen", "rejected"}.
//   adpa         sft_weight·NLL(chosen) + adpa_weight·ADPA(ŷ) with advantages log π_teacher − log π_teacher_reference
//                over the teacher's top-k, on the student's own response ŷ. Data: {"prompt", "chosen",
//                "completion"} (what a generate stage writes for a pairs file), or pairs whose "rejected" holds ŷ
//                (the released code's files) when the file has no "completion".
//   aligndistil  (1 − kd_ratio)·NLL + kd_ratio·AlignDistil(teacher = DPO model, teacher_reference = reverse-DPO
//                model, or the SFT model for theorem1), seq-token mean (aligndistil_len_norm) or sequence sums
//                averaged over sequences. Data: {"prompt", "completion"} or pairs (their "chosen"); lmbda 1 samples
//                every step's completions from the student (the on-policy trainer; default 0 = off-policy).
// DCKD and ADPA teachers may be `{model: NAME, precompute: true}`: their top-k tables at every response position are
// computed once before training (data-parallel), cached in <output_dir>/cache/teacher-<key>.safetensors under a key
// of the teacher's weights, tokenizer, data file contents, max_length, truncation, template, dtype, TP degree and
// top_k (never stale; reruns and resumes reuse them), and the teacher is freed before the student loads.
// Logits are computed in chunks of positions of the completion tokens only, so full-vocabulary logits of teacher and
// student never exist for a whole batch. The teacher must share the student's tokenizer (checked before training).
#pragma once

#include "config/schema.h"
#include "trainer/stages/stage_env.h"

namespace aligntrain::stages {

StageResult run_distill(StageEnv& env, const config::StageConfig& stage);

}  // namespace aligntrain::stages
