// See gpu_estimate.h.
#include "trainer/cli/gpu_estimate.h"

#include <algorithm>
#include <cctype>

#include "trainer/model/flops.h"

namespace aligntrain::cli {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

std::optional<Chip> find_chip(const std::string& device_name) {
  // Dense bf16 tensor-core peaks from the vendors' data sheets (the sparsity figures are twice these). Checked in
  // order, so that the more specific names come first ("gh200" before "h200", "h100 pcie" before "h100").
  static const std::vector<std::pair<std::string, Chip>> table = {
      {"gh200", {"GH200", 989.0}},     {"h200", {"H200", 989.0}},        {"h100 pcie", {"H100 PCIe", 756.0}},
      {"h100 nvl", {"H100 NVL", 835.0}}, {"h100", {"H100 SXM", 989.0}},  {"h20", {"H20", 148.0}},
      {"b200", {"B200", 2250.0}},      {"a100", {"A100", 312.0}},        {"l40s", {"L40S", 362.0}},
  };
  const std::string name = lower(device_name);
  for (const auto& [key, chip] : table) {
    if (name.find(key) != std::string::npos) return chip;
  }
  return std::nullopt;
}

StageEstimate estimate_stage(const StageWork& w, double peak_tflops, double mfu) {
  constexpr double gib = 1024.0 * 1024.0 * 1024.0;
  StageEstimate e;
  e.flops_per_token = model::train_flops_per_token(w.policy, w.mean_keys);
  for (const auto& f : w.frozen) e.flops_per_token += model::forward_flops_per_token(f, w.mean_keys);
  e.tokens_per_s = mfu * peak_tflops * 1e12 / e.flops_per_token;

  const double n = static_cast<double>(model::parameter_count(w.policy));
  const double weight_bytes = w.bf16 ? 2.0 : 4.0;
  // weights (+ fp32 master with bf16 weights), fp32 gradients, two fp32 AdamW moments
  e.state_gib = n * ((w.bf16 ? 2.0 + 4.0 : 4.0) + 4.0 + 8.0) / gib;
  for (const auto& f : w.resident) e.frozen_gib += static_cast<double>(model::parameter_count(f)) * weight_bytes / gib;

  const double tokens = static_cast<double>(w.rows_per_micro) * w.max_length;
  const double per_layer = model::activation_bytes_per_token_layer(w.policy, weight_bytes);
  const double layers = static_cast<double>(w.policy.num_layers);
  const double kept = w.checkpointing ? tokens * (layers * w.policy.hidden_size * weight_bytes + per_layer)
                                      : tokens * layers * per_layer;
  // fp32 logits of one chunk, their gradient and the softmax statistics: about three chunk budgets.
  e.activation_gib = (kept + 3.0 * w.logits_mib * 1024.0 * 1024.0) / gib;
  return e;
}

}  // namespace aligntrain::cli
