// See hf_names.h.
#include "trainer/model/hf_names.h"

#include "common/errors.h"

namespace aligntrain::model {

std::vector<TensorSpec> hf_tensor_table(const ModelConfig& c) {
  const int64_t h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim,
                m = c.intermediate_size;
  const bool qkv_bias = c.qkv_bias();
  std::vector<TensorSpec> t;
  t.push_back({"model.embed_tokens.weight", {c.vocab_size, h}, Split::kRows, Init::kNormal});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    t.push_back({p + "input_layernorm.weight", {h}, Split::kReplicated, Init::kOnes});
    t.push_back({p + "self_attn.q_proj.weight", {q, h}, Split::kRows, Init::kNormal});
    if (qkv_bias) t.push_back({p + "self_attn.q_proj.bias", {q}, Split::kRows, Init::kZeros});
    t.push_back({p + "self_attn.k_proj.weight", {kv, h}, Split::kRows, Init::kNormal});
    if (qkv_bias) t.push_back({p + "self_attn.k_proj.bias", {kv}, Split::kRows, Init::kZeros});
    t.push_back({p + "self_attn.v_proj.weight", {kv, h}, Split::kRows, Init::kNormal});
    if (qkv_bias) t.push_back({p + "self_attn.v_proj.bias", {kv}, Split::kRows, Init::kZeros});
    t.push_back({p + "self_attn.o_proj.weight", {h, q}, Split::kColumns, Init::kNormal});
    if (c.attention_bias) t.push_back({p + "self_attn.o_proj.bias", {h}, Split::kReplicated, Init::kZeros});
    if (c.qk_norm()) {
      t.push_back({p + "self_attn.q_norm.weight", {c.head_dim}, Split::kReplicated, Init::kOnes});
      t.push_back({p + "self_attn.k_norm.weight", {c.head_dim}, Split::kReplicated, Init::kOnes});
    }
    t.push_back({p + "post_attention_layernorm.weight", {h}, Split::kReplicated, Init::kOnes});
    t.push_back({p + "mlp.gate_proj.weight", {m, h}, Split::kRows, Init::kNormal});
    if (c.mlp_bias) t.push_back({p + "mlp.gate_proj.bias", {m}, Split::kRows, Init::kZeros});
    t.push_back({p + "mlp.up_proj.weight", {m, h}, Split::kRows, Init::kNormal});
    if (c.mlp_bias) t.push_back({p + "mlp.up_proj.bias", {m}, Split::kRows, Init::kZeros});
    t.push_back({p + "mlp.down_proj.weight", {h, m}, Split::kColumns, Init::kNormal});
    if (c.mlp_bias) t.push_back({p + "mlp.down_proj.bias", {h}, Split::kReplicated, Init::kZeros});
  }
  t.push_back({"model.norm.weight", {h}, Split::kReplicated, Init::kOnes});
  if (!c.tie_word_embeddings) t.push_back({"lm_head.weight", {c.vocab_size, h}, Split::kRows, Init::kNormal});
  return t;
}

bool is_ignorable_extra(const std::string& name, const ModelConfig& c) {
  const std::string suffix = "rotary_emb.inv_freq";
  if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return true;
  }
  return c.tie_word_embeddings && name == "lm_head.weight";
}

const char* split_name(Split split) {
  switch (split) {
    case Split::kReplicated: return "replicated";
    case Split::kRows: return "rows";
    case Split::kColumns: return "columns";
  }
  return "replicated";
}

std::optional<Split> split_from_name(const std::string& name) {
  for (Split s : {Split::kReplicated, Split::kRows, Split::kColumns})
    if (name == split_name(s)) return s;
  return std::nullopt;
}

int split_dim(Split split) { return split == Split::kRows ? 0 : split == Split::kColumns ? 1 : -1; }

std::vector<int64_t> local_shape(const TensorSpec& spec, int64_t tp) {
  auto shape = spec.shape;
  const int dim = split_dim(spec.split);
  if (dim < 0 || tp == 1) return shape;
  if (shape[dim] % tp != 0) {
    throw UsageError(spec.name + ": dimension " + std::to_string(dim) + " (" + std::to_string(shape[dim]) +
                     ") is not divisible by the tensor-parallel degree " + std::to_string(tp));
  }
  shape[dim] /= tp;
  return shape;
}

}  // namespace aligntrain::model
