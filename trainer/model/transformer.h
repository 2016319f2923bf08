// The Llama-family decoder (Llama, Mistral, Qwen2, Qwen3) as LibTorch modules whose parameter names are the
// Hugging Face tensor names ("model.layers.0.self_attn.q_proj.weight", "lm_head.weight"), so loading and saving
// is a name-for-name copy. Every linear map comes from a LayerFactory (dense or tensor-parallel).
//
// CausalLM::hidden_states() returns the final normalised hidden states so callers can compute token log-probs in
// chunks through lm_head() without materialising full-vocabulary logits.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

#include <memory>
#include <optional>

#include "trainer/model/attention.h"
#include "trainer/model/layers.h"
#include "trainer/model/model_config.h"
#include "trainer/model/parameters.h"
#include "trainer/model/projection.h"

namespace aligntrain::model {

struct ForwardInput {
  at::Tensor input_ids;                       // int64 [B, T]
  std::optional<at::Tensor> attention_mask;   // [B, T]: 1 token, 0 padding (keys that are padding are masked)
  std::optional<at::Tensor> position_ids;     // int64 [B, T]; default 0..T-1
  std::optional<at::Tensor> segment_ids;      // int64 [B, T]: packed documents; attention stays inside a segment
  // Rows that begin with another row's tokens, such as the completions of one prompt: row b's first
  // shared_prefix->length[b] positions hold the same ids at the same positions as row shared_prefix->row[b], a row
  // that shares nothing itself. Each shared token then goes through the model once: attention reads its keys and
  // values in every row that contains it, and its gradient is the sum over those rows. The result equals the
  // forward without sharing. Not with segment_ids.
  struct SharedPrefix {
    at::Tensor row, length;  // int64 [B]
  };
  std::optional<SharedPrefix> shared_prefix;
};

// True while a decoder layer runs its forward under activation checkpointing: autograd is off there although the
// step trains, so training-only behaviour (LoRA dropout) asks this as well as GradMode.
bool in_checkpointed_forward();

// The MLP activation (config.activation; architectures.h lists the names).
at::Tensor activate(Activation activation, const at::Tensor& x);

// Gated MLP: down(act(gate(x)) * up(x)) (SwiGLU with SiLU).
class Mlp : public torch::nn::Module {
 public:
  Mlp(const ModelConfig& config, LayerFactory& factory);
  at::Tensor forward(const at::Tensor& x);
  std::shared_ptr<Projection> gate_proj, up_proj, down_proj;

 private:
  Activation activation_;
};

// Pre-norm residual block: x + attn(norm(x)), then + mlp(norm(·)).
class DecoderLayer : public torch::nn::Module {
 public:
  DecoderLayer(const ModelConfig& config, LayerFactory& factory);
  at::Tensor forward(const at::Tensor& x, const AttentionContext& ctx);
  std::shared_ptr<RMSNorm> input_layernorm, post_attention_layernorm;
  std::shared_ptr<Attention> self_attn;
  std::shared_ptr<Mlp> mlp;
};

// HF's `model.` prefix: embeddings, decoder layers, final norm.
class DecoderModel : public torch::nn::Module {
 public:
  DecoderModel(const ModelConfig& config, LayerFactory& factory);
  std::shared_ptr<Embedding> embed_tokens;
  torch::nn::ModuleList layers;
  std::vector<std::shared_ptr<DecoderLayer>> layer_list;
  std::shared_ptr<RMSNorm> norm;
};

class CausalLM : public torch::nn::Module {
 public:
  CausalLM(const ModelConfig& config, LayerFactory& factory);

  // Final normalised hidden states [B, T, hidden]. With padding in attention_mask or a shared prefix the forward is
  // padding-free (every position-wise op on the real, distinct tokens only) and padding positions are 0.
  at::Tensor hidden_states(const ForwardInput& in);
  // Logits for hidden states (this rank's vocabulary shard under tensor parallelism), in the model's dtype.
  at::Tensor lm_head_forward(const at::Tensor& hidden) { return lm_head->forward(hidden); }
  // hidden_states then lm_head.
  at::Tensor forward(const ForwardInput& in) { return lm_head_forward(hidden_states(in)); }

  // Incremental decoding (no gradients). An empty cache for `batch` rows of up to `capacity` positions, in the
  // model's dtype on its device.
  KvCache new_cache(int64_t batch, int64_t capacity) const;
  // Final hidden states [B, T, hidden] of `input_ids` [B, T] at `positions` [B, T], attending to the cache's
  // `length` earlier slots and to these (causally); their keys and values are appended and `length` advances by T.
  // `key_valid` [B, length + T] is false for slots that hold padding (left-padded prompts).
  at::Tensor hidden_states_cached(const at::Tensor& input_ids, const at::Tensor& positions, const at::Tensor& key_valid,
                                  KvCache& cache);

  // Recompute each decoder layer in backward instead of keeping its activations.
  void set_activation_checkpointing(bool on) { checkpointing_ = on; }
  at::ScalarType dtype() const;
  const ModelConfig& config() const { return config_; }

  // Every parameter of the model, in name-table order (see parameters.h). Load, save, optimizer and checkpoints
  // walk this list; freeze parameters through it.
  ParameterSet& parameter_set() { return params_; }
  const ParameterSet& parameter_set() const { return params_; }
  // Registers a parameter beyond the architecture's table (`local` is this rank's shard of `spec`): it is then
  // loaded, saved, checkpointed and trained like the others. Returns the registered tensor.
  at::Tensor add_parameter(const TensorSpec& spec, const at::Tensor& local, bool trainable = true);

  std::shared_ptr<DecoderModel> model;
  std::shared_ptr<LmHead> lm_head;

 private:
  AttentionContext make_context(const ForwardInput& in, const at::Tensor& hidden) const;

  ModelConfig config_;
  ParameterSet params_;
  at::Tensor inv_freq_;  // fp32 CPU; not a parameter (HF's non-persistent buffer)
  bool checkpointing_ = false;
};

}  // namespace aligntrain::model
