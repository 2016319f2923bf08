// Injected linear maps. The attention and MLP blocks, the embedding and the LM head do not create their own
// weights: they receive them from a LayerFactory. The dense factory here gives plain layers (one rank); the
// tensor-parallel factory (trainer/parallel/) gives column-/row-parallel and vocab-parallel layers with the same
// parameter names ("weight", "bias"), so model code never changes with the layout.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <memory>

#include "trainer/model/layers.h"

namespace aligntrain::model {

// y = x Aᵀ + b. `in_features`/`out_features` are the full (unsharded) sizes.
class Projection : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& x) = 0;
};

// Token embedding lookup, possibly sharded over the vocabulary.
class Embedding : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& ids) = 0;
  virtual at::Tensor weight() const = 0;  // this rank's [vocab_local, hidden] rows
};

// Maps hidden states to (possibly vocabulary-sharded) logits; may share the embedding's weight.
class LmHead : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& hidden) = 0;
  virtual at::Tensor weight() const = 0;  // this rank's [vocab_local, hidden] rows
};

class LayerFactory {
 public:
  virtual ~LayerFactory() = default;
  // Output features split across tensor-parallel ranks (q, k, v, gate, up). Forward: identity in, sharded out.
  virtual std::shared_ptr<Projection> column(int64_t in_features, int64_t out_features, bool bias) = 0;
  // Input features split across ranks (o, down). Forward: sharded in, all-reduced out.
  virtual std::shared_ptr<Projection> row(int64_t in_features, int64_t out_features, bool bias) = 0;
  virtual std::shared_ptr<Embedding> embedding(int64_t vocab, int64_t hidden) = 0;
  // `tied`: reuse the embedding's weight (tie_word_embeddings) instead of a separate parameter.
  virtual std::shared_ptr<LmHead> lm_head(int64_t hidden, int64_t vocab, const std::shared_ptr<Embedding>& tied) = 0;
  // RMSNorm over the head dimension of this rank's (sharded) heads: Qwen3's q_norm / k_norm. Its weight is
  // replicated, so under tensor parallelism its gradient is summed over the group.
  virtual std::shared_ptr<RMSNorm> head_norm(int64_t head_dim, double eps) = 0;
  virtual int64_t tp_size() const = 0;
  virtual int64_t tp_rank() const = 0;
};

// One rank, no sharding.
std::unique_ptr<LayerFactory> dense_layer_factory();

}  // namespace aligntrain::model
