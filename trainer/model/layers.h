// Small building blocks of the Llama-family decoder: RMSNorm and rotary position embeddings (HF's rotate-half
// layout, so checkpoint weights are used as stored, without permutation).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>

#include "trainer/model/model_config.h"

namespace aligntrain::model {

// y = w · x / sqrt(mean(x²) + eps), computed in fp32 and cast back to the input dtype before the weight (as HF).
class RMSNorm : public torch::nn::Module {
 public:
  RMSNorm(int64_t dim, double eps);
  virtual ~RMSNorm() = default;
  virtual at::Tensor forward(const at::Tensor& x) { return weight * normalize(x); }
  // x / sqrt(mean(x²) + eps) in fp32, cast back to x's dtype (no weight).
  at::Tensor normalize(const at::Tensor& x) const;
  at::Tensor weight;

 private:
  double eps_;
};

// Inverse frequencies θ_i = base^(-2i/d), i < d/2, with the config's scaling (default, linear, llama3).
at::Tensor rope_inv_freq(const ModelConfig& config);

// cos and sin of positions × inv_freq, duplicated to the full head_dim ([..., T, head_dim]), computed in fp32 and
// returned in `dtype`. `positions` is int64 [B, T] or [T].
struct RopeTables {
  at::Tensor cos, sin;  // [B, 1, T, head_dim] broadcastable over heads
};
RopeTables rope_tables(const at::Tensor& inv_freq, const at::Tensor& positions, at::ScalarType dtype);

// x·cos + rotate_half(x)·sin for x of shape [B, heads, T, head_dim].
at::Tensor apply_rope(const at::Tensor& x, const RopeTables& rope);

}  // namespace aligntrain::model
