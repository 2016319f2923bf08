// What `plan --gpu NAME` predicts for a training stage on one GPU: tokens/s from the chip's dense bf16 peak and an
// assumed model-FLOPs utilisation (MFU), and memory from the weights, optimizer state, frozen models and
// activations. An estimate to hold a measurement against (bench/gpu/), not a promise.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "trainer/model/model_config.h"

namespace aligntrain::cli {

struct Chip {
  std::string name;        // as the table spells it, e.g. "H100 SXM"
  double bf16_tflops = 0;  // dense bf16 peak, TFLOP/s (no sparsity)
};

// The chip whose table entry `device_name` names (case-insensitive substring, e.g. "NVIDIA H100 80GB HBM3" → H100
// SXM): H100 (SXM, PCIe, NVL), H200, H20, GH200, A100, L40S,
// B200. Nothing for an unknown name (the caller then needs
// an explicit peak; there is no silent default).
std::optional<Chip> find_chip(const std::string& device_name);

// The work of one training stage per optimizer step on one GPU (tensor and data parallel degree 1).
struct StageWork {
  model::ModelConfig policy;                  // trained
  std::vector<model::ModelConfig> frozen;     // models run forward only every step (live reference, teacher, ...)
  std::vector<model::ModelConfig> resident;   // frozen models held on the GPU (those of `frozen`)
  int rows_per_micro = 1;                     // sequences per forward (a preference micro-batch of k pairs: 2k)
  int max_length = 0;                         // tokens per sequence (every row full: packed or long documents)
  double mean_keys = 0;                       // keys a query sees on average (model::causal_mean_keys(max_length))
  bool checkpointing = false;
  bool bf16 = true;                           // bf16 weights and activations, fp32 master weights and AdamW
  double logits_mib = 128;                    // parallel.logits_mb: the LM-head chunk budget
};

struct StageEstimate {
  double flops_per_token = 0;   // model FLOPs per trained token: 6·N + attention, plus the frozen models' forwards
  double tokens_per_s = 0;      // mfu · peak / flops_per_token
  double state_gib = 0;         // trained weights, their fp32 master copy, fp32 gradients, AdamW moments
  double frozen_gib = 0;        // frozen models' weights
  double activation_gib = 0;    // kept for the backward in one micro-batch, plus the logits chunks
  double total_gib() const { return state_gib + frozen_gib + activation_gib; }
};

StageEstimate estimate_stage(const StageWork& work, double peak_tflops, double mfu);

}  // namespace aligntrain::cli
