// Grouped-query self-attention of the Llama family through scaled-dot-product attention. The q/k/v/o projections
// come from a LayerFactory (dense or tensor-parallel); under tensor parallelism this rank holds
// num_heads / tp query heads and num_kv_heads / tp key-value heads.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <memory>
#include <optional>

#include "trainer/model/layers.h"
#include "trainer/model/model_config.h"
#include "trainer/model/projection.h"

namespace aligntrain::model {

// What every layer of one forward shares: rotary tables and the attention mask.
struct AttentionContext {
  RopeTables rope;
  std::optional<at::Tensor> mask;  // bool [B, 1, T, S], true = may attend; none = plain causal
  bool causal = true;              // used only without a mask
};

class Attention : public torch::nn::Module {
 public:
  Attention(const ModelConfig& config, LayerFactory& factory);
  at::Tensor forward(const at::Tensor& x, const AttentionContext& ctx);

  std::shared_ptr<Projection> q_proj, k_proj, v_proj, o_proj;
  std::shared_ptr<RMSNorm> q_norm, k_norm;  // Qwen3 only

 private:
  int64_t local_heads_, local_kv_heads_, head_dim_;
};

}  // namespace aligntrain::model
