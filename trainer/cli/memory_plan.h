// The per-rank peak of tensor memory that `aligntrain plan` predicts for a training stage: the trained model's
// weights, gradients and AdamW state, the frozen models' weights, what one micro-batch's forward keeps for the
// backward (activations), and the transient buffers of the LM head's logits chunks and of the frozen models'
// forwards, all per rank under tensor parallelism (and ZeRO-1 for the optimizer state). The peak is the largest of
// a few moments of a step (each the memory held then, added up); see memory_plan.cc for every term. Checked against
// the measured CPU peak (runtime/cpu_memory.h) by test/cli/memory_plan_test.sh within ±20%.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trainer/model/model_config.h"

namespace aligntrain::cli {

// How a stage's trained model meets its loss (each path keeps different buffers through the LM head).
enum class LossPath {
  kSft,        // the NLL with the loss scale known: the LM head's weight gradient is formed during the forward
  kResponses,  // sequence log-probs of responses (preference, unpaired, negatives): kernels::token_logprobs
  kDistill,    // distill: the student's NLL and a divergence against a live teacher's logits, chunk by chunk
};

// A frozen model (reference, teacher, teacher reference) with the bytes per element of its weights (4 fp32, 2 bf16).
struct FrozenModel {
  model::ModelConfig config;
  double bytes = 4;
};

// One training stage's work on one rank.
struct StageMemoryWork {
  LossPath path = LossPath::kSft;
  model::ModelConfig policy;
  double bytes = 4;                       // the policy's weights and activations (4 fp32, 2 bf16)
  bool master_weights = false;            // bf16 policy: AdamW keeps fp32 master weights
  std::vector<FrozenModel> live;          // resident for the whole stage, run forward every micro-batch
  std::vector<FrozenModel> precomputed;   // run over the data before training (one at a time) and freed
  // Online stages' reward models: resident, run forward when a step's samples are scored (the previous step's
  // gradients still held); a score head instead of an LM head.
  std::vector<FrozenModel> scorers;
  int64_t rows = 1;                       // sequences per forward (a preference micro-batch of k pairs: 2k)
  int64_t max_length = 0;                 // tokens per sequence (every row full: the worst case)
  int64_t accumulation = 1;               // micro-batches per optimizer step on a rank
  int tp = 1, dp = 1;
  bool zero1 = false;                     // AdamW state (and master weights) sharded over the data-parallel group
  bool checkpointing = false;             // activation checkpointing of each decoder layer
  int64_t logits_budget_bytes = int64_t{128} << 20;  // parallel.logits_mb
  int64_t bucket_bytes = int64_t{25} << 20;          // parallel.bucket_mb (the DP gradient all-reduce)
  bool distill_nll_grad = false;          // distill: the NLL term has a weight (its LM-head gradient is kept)
  bool evaluates = false;                 // data.eval: forwards without autograd while the gradients are held
  // LoRA: the adapter parameters on this rank, the only ones with gradients and AdamW state (the base is frozen,
  // the LM head's weight gradient is never formed); negative: full training.
  double adapter_params = -1;
};

// Bytes per rank.
struct StageMemory {
  double weights = 0;      // the trained model's weights (its shard)
  double gradients = 0;    // its gradients
  double optimizer = 0;    // AdamW moments (+ fp32 master weights), this rank's ZeRO-1 share
  double frozen = 0;       // live frozen models' weights
  double activations = 0;  // kept by one micro-batch's forward for the backward
  double moment = 0;       // held above weights + optimizer + frozen at the step's largest moment
  double peak = 0;         // the stage's peak: weights + optimizer + frozen + moment (or a precompute pass)
  std::string phase;       // the moment that holds the peak (e.g. "lm-head forward", "reference forward")
};

StageMemory plan_stage_memory(const StageMemoryWork& work);

}  // namespace aligntrain::cli
