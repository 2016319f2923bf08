// Grouped-query self-attention of the Llama family through scaled-dot-product attention. The q/k/v/o projections
// come from a LayerFactory (dense or tensor-parallel); under tensor parallelism this rank holds
// num_heads / tp query heads and num_kv_heads / tp key-value heads.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <memory>
#include <optional>
#include <vector>

#include "trainer/model/layers.h"
#include "trainer/model/model_config.h"
#include "trainer/model/projection.h"

namespace aligntrain::model {

// Keys and values of earlier positions for incremental decoding: per layer, this rank's KV heads
// [B, local_kv_heads, capacity, head_dim]; slots [0, length) are filled. A forward with a cache writes its T new
// keys/values into slots [length, length + T) and attends over [0, length + T); the caller advances `length`.
struct KvCache {
  struct Layer {
    at::Tensor k, v;
  };
  std::vector<Layer> layers;
  int64_t length = 0;
  int64_t capacity() const { return layers.empty() ? 0 : layers.front().k.size(2); }
};

// What every layer of one forward shares: rotary tables, the attention mask and the KV cache.
struct AttentionContext {
  RopeTables rope;
  std::optional<at::Tensor> mask;  // bool [B, 1, T, S], true = may attend; none = plain causal
  bool causal = true;              // used only without a mask
  KvCache* cache = nullptr;        // incremental decoding (then `mask` covers the S = length + T cached keys)
  // Padding-free forward: the flat indices [N] of the real tokens of the [batch, length] input; the layers' input
  // and output are then [N, hidden], and attention scatters q, k, v back into the padded layout it masks.
  std::optional<at::Tensor> tokens;
  // With shared prefixes (ForwardInput::shared_prefix) some positions hold a token whose row is another one: then
  // `tokens` lists each token's own position and `gather` [batch·length] gives every position its token's index
  // (N, a zero row, at padding).
  std::optional<at::Tensor> gather;
  int64_t batch = 0, length = 0;
};

// Rows [N, F] of the real tokens `tokens` (flat indices into batch·length positions) put back into the padded
// layout [batch·length, F], zeros at padding: what the padding-free forward does before attention and at its end.
// Autograd keeps only `tokens` for its backward.
at::Tensor pad_tokens(const at::Tensor& rows, const at::Tensor& tokens, int64_t positions);
// The padded layout [batch·length, F] of the token rows [N, F]: position i takes row gather[i], or zeros where
// gather[i] = N. A row that several positions take gets the sum of their gradients.
at::Tensor gather_tokens(const at::Tensor& rows, const at::Tensor& gather);

// Whether attention repeats each key-value head over its group of query heads before scaled-dot-product attention
// instead of passing enable_gqa. On CPU never (the numerics stay as they are). On CUDA, PyTorch's flash kernel (fp16 /
// bf16, no explicit mask: the plain causal batch, is_causal) takes grouped heads as they are, but the
// memory-efficient kernel (the only fused one that takes a mask: padded and packed batches, or fp32) refuses
// enable_gqa and SDPA would fall back to the unfused math path that materialises every score; with the heads
// repeated it runs fused.
bool repeat_kv_heads(const c10::Device& device, at::ScalarType dtype, bool has_mask, bool grouped);

// softmax(q kᵀ / sqrt(head_dim) + mask) v: q [B, H, T, D], k and v [B, H_kv, S, D] (H a multiple of H_kv); `mask` bool
// [B or 1, 1, T, S] (true = may attend), or none for causal (`causal`) or full attention. `repeat_kv` chooses the
// form of the call (repeat_kv_heads); the result is the same.
at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const std::optional<at::Tensor>& mask,
                  bool causal, bool repeat_kv);

class Attention : public torch::nn::Module {
 public:
  Attention(const ModelConfig& config, LayerFactory& factory);
  at::Tensor forward(const at::Tensor& x, const AttentionContext& ctx);
  // Which entry of a KvCache this layer uses (its decoder layer's index).
  void set_layer_index(int64_t i) { layer_index_ = i; }
  int64_t local_kv_heads() const { return local_kv_heads_; }
  int64_t head_dim() const { return head_dim_; }

  std::shared_ptr<Projection> q_proj, k_proj, v_proj, o_proj;
  std::shared_ptr<RMSNorm> q_norm, k_norm;  // Qwen3 only

 private:
  int64_t local_heads_, local_kv_heads_, head_dim_;
  int64_t layer_index_ = 0;
};

}  // namespace aligntrain::model
