// See attention.h.
#include "trainer/model/attention.h"

#include <ATen/ATen.h>

#include "common/errors.h"

namespace aligntrain::model {

Attention::Attention(const ModelConfig& c, LayerFactory& f) : head_dim_(c.head_dim) {
  const int64_t tp = f.tp_size();
  if (c.num_heads % tp != 0 || c.num_kv_heads % tp != 0) {
    throw UsageError("tensor parallel degree " + std::to_string(tp) + " must divide num_attention_heads (" +
                     std::to_string(c.num_heads) + ") and num_key_value_heads (" + std::to_string(c.num_kv_heads) +
                     ")");
  }
  local_heads_ = c.num_heads / tp;
  local_kv_heads_ = c.num_kv_heads / tp;
  const bool qkv_bias = c.qkv_bias();
  q_proj = register_module("q_proj", f.column(c.hidden_size, c.num_heads * c.head_dim, qkv_bias));
  k_proj = register_module("k_proj", f.column(c.hidden_size, c.num_kv_heads * c.head_dim, qkv_bias));
  v_proj = register_module("v_proj", f.column(c.hidden_size, c.num_kv_heads * c.head_dim, qkv_bias));
  o_proj = register_module("o_proj", f.row(c.num_heads * c.head_dim, c.hidden_size, c.attention_bias));
  if (c.qk_norm()) {
    q_norm = register_module("q_norm", f.head_norm(c.head_dim, c.rms_norm_eps));
    k_norm = register_module("k_norm", f.head_norm(c.head_dim, c.rms_norm_eps));
  }
}

at::Tensor pad_tokens(const at::Tensor& rows, const at::Tensor& tokens, int64_t positions) {
  // index_put, not index_copy: autograd's index_copy keeps `rows` for the backward (only its shape is needed), which
  // in a padded batch kept every layer's q, k and v projections and the final hidden states alive twice.
  return at::zeros({positions, rows.size(-1)}, rows.options()).index_put(c10::List<std::optional<at::Tensor>>{tokens},
                                                                         rows);
}

at::Tensor gather_tokens(const at::Tensor& rows, const at::Tensor& gather) {
  return at::cat({rows, at::zeros({1, rows.size(-1)}, rows.options())}).index_select(0, gather);
}

bool repeat_kv_heads(const c10::Device& device, at::ScalarType dtype, bool has_mask, bool grouped) {
  if (!grouped || !device.is_cuda()) return false;
  const bool flash_dtype = dtype == at::kBFloat16 || dtype == at::kHalf;
  return has_mask || !flash_dtype;
}

at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const std::optional<at::Tensor>& mask,
                  bool causal, bool repeat_kv) {
  const int64_t group = q.size(1) / k.size(1);
  const bool gqa = group > 1;
  if (repeat_kv && gqa) {
    const auto kr = k.repeat_interleave(group, 1), vr = v.repeat_interleave(group, 1);
    return mask ? at::scaled_dot_product_attention(q, kr, vr, mask, 0.0, false)
                : at::scaled_dot_product_attention(q, kr, vr, std::nullopt, 0.0, causal);
  }
  return mask ? at::scaled_dot_product_attention(q, k, v, mask, 0.0, false, std::nullopt, gqa)
              : at::scaled_dot_product_attention(q, k, v, std::nullopt, 0.0, causal, std::nullopt, gqa);
}

at::Tensor Attention::forward(const at::Tensor& x, const AttentionContext& ctx) {
  const bool unpadded = ctx.tokens.has_value();
  const int64_t b = unpadded ? ctx.batch : x.size(0), t = unpadded ? ctx.length : x.size(1);
  // Padding-free input [N, hidden]: the projections ran on real tokens only; attention works on [B, T] (padding
  // slots zero, masked as keys, their query rows dropped again below).
  const auto padded = [&](const at::Tensor& y) {
    if (!unpadded) return y;
    return ctx.gather ? gather_tokens(y, *ctx.gather) : pad_tokens(y, *ctx.tokens, b * t);
  };
  auto q = padded(q_proj->forward(x)).view({b, t, local_heads_, head_dim_});
  auto k = padded(k_proj->forward(x)).view({b, t, local_kv_heads_, head_dim_});
  auto v = padded(v_proj->forward(x)).view({b, t, local_kv_heads_, head_dim_}).transpose(1, 2);
  if (q_norm) {
    q = q_norm->forward(q);
    k = k_norm->forward(k);
  }
  q = apply_rope(q.transpose(1, 2), ctx.rope);
  k = apply_rope(k.transpose(1, 2), ctx.rope);
  if (ctx.cache) {
    auto& layer = ctx.cache->layers.at(static_cast<size_t>(layer_index_));
    const int64_t past = ctx.cache->length;
    layer.k.narrow(2, past, t).copy_(k);
    layer.v.narrow(2, past, t).copy_(v);
    k = layer.k.narrow(2, 0, past + t);
    v = layer.v.narrow(2, 0, past + t);
  }
  const bool repeat = repeat_kv_heads(q.device(), q.scalar_type(), ctx.mask.has_value(), local_heads_ != local_kv_heads_);
  auto out = attend(q, k, v, ctx.mask, ctx.causal, repeat);
  auto merged = out.transpose(1, 2).reshape({b, t, local_heads_ * head_dim_});
  if (unpadded) merged = merged.view({b * t, local_heads_ * head_dim_}).index_select(0, *ctx.tokens);
  return o_proj->forward(merged);
}

}  // namespace aligntrain::model
