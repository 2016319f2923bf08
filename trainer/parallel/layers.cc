// See layers.h.
#include "trainer/parallel/layers.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <string>

#include "common/errors.h"
#include "trainer/parallel/mappings.h"

namespace aligntrain::parallel {

namespace {

int64_t shard_size(int64_t full, runtime::Communicator& g, const char* what) {
  if (full % g.size() != 0) {
    throw UsageError(std::string(what) + " (" + std::to_string(full) + ") is not divisible by the tensor-parallel degree " +
                     std::to_string(g.size()));
  }
  return full / g.size();
}

class ColumnParallel : public model::Projection {
 public:
  ColumnParallel(int64_t in, int64_t out, bool bias, runtime::Communicator& g) : group_(g) {
    const int64_t local = shard_size(out, g, "output features of a column-parallel layer");
    weight_ = register_parameter("weight", at::empty({local, in}));
    if (bias) bias_ = register_parameter("bias", at::empty({local}));
  }
  at::Tensor forward(const at::Tensor& x) override { return at::linear(copy_to_group(x, group_), weight_, bias_); }

 private:
  runtime::Communicator& group_;
  at::Tensor weight_, bias_;
};

class RowParallel : public model::Projection {
 public:
  RowParallel(int64_t in, int64_t out, bool bias, runtime::Communicator& g) : group_(g) {
    const int64_t local = shard_size(in, g, "input features of a row-parallel layer");
    weight_ = register_parameter("weight", at::empty({out, local}));
    if (bias) bias_ = register_parameter("bias", at::empty({out}));
  }
  at::Tensor forward(const at::Tensor& x) override {
    auto y = reduce_from_group(at::linear(x, weight_), group_);
    return bias_.defined() ? y + bias_ : y;
  }

 private:
  runtime::Communicator& group_;
  at::Tensor weight_, bias_;
};

// Embedding rows whose backward adds the rows' gradients straight into the weight's .grad (allocated when
// undefined) with index_add_, instead of returning a dense weight-sized gradient for autograd to add: at a 128k
// vocabulary that buffer is as large as the weight (gradient-accumulation fusion). Returns no gradient for the weight.
class EmbeddingIntoGrad : public torch::autograd::Function<EmbeddingIntoGrad> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& weight, const at::Tensor& ids) {
    ctx->saved_data["weight"] = weight;  // the parameter itself: its .grad is written in backward
    ctx->saved_data["ids"] = ids;
    return at::embedding(weight.detach(), ids);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto weight = ctx->saved_data["weight"].toTensor();
    const auto ids = ctx->saved_data["ids"].toTensor();
    ctx->saved_data.clear();
    if (!weight.grad().defined()) weight.mutable_grad() = at::zeros_like(weight, at::MemoryFormat::Contiguous);
    const auto g = grad_out[0].reshape({-1, weight.size(1)}).to(weight.grad().scalar_type());
    weight.mutable_grad().index_add_(0, ids.reshape({-1}), g);
    return {at::Tensor(), at::Tensor()};
  }
};

at::Tensor embedding_rows(const at::Tensor& weight, const at::Tensor& ids) {
  if (!weight.requires_grad() || !at::GradMode::is_enabled()) return at::embedding(weight, ids);
  return EmbeddingIntoGrad::apply(weight, ids);
}

class VocabParallelEmbedding : public model::Embedding {
 public:
  VocabParallelEmbedding(int64_t vocab, int64_t hidden, runtime::Communicator& g) : group_(g) {
    local_ = shard_size(vocab, g, "vocab_size");
    start_ = g.rank() * local_;
    weight_ = register_parameter("weight", at::empty({local_, hidden}));
  }
  at::Tensor forward(const at::Tensor& ids) override {
    if (group_.size() == 1) return embedding_rows(weight_, ids);
    const auto outside = ids.lt(start_).logical_or(ids.ge(start_ + local_));
    const auto local_ids = at::where(outside, at::zeros_like(ids), ids - start_);
    const auto rows = embedding_rows(weight_, local_ids).masked_fill(outside.unsqueeze(-1), 0.0);
    return reduce_from_group(rows, group_);
  }
  at::Tensor weight() const override { return weight_; }

 private:
  runtime::Communicator& group_;
  int64_t local_ = 0, start_ = 0;
  at::Tensor weight_;
};

class VocabParallelLmHead : public model::LmHead {
 public:
  VocabParallelLmHead(int64_t hidden, int64_t vocab, std::shared_ptr<model::Embedding> tied, runtime::Communicator& g)
      : group_(g), tied_(std::move(tied)) {
    if (!tied_) weight_ = register_parameter("weight", at::empty({shard_size(vocab, g, "vocab_size"), hidden}));
  }
  at::Tensor forward(const at::Tensor& hidden) override { return at::linear(copy_to_group(hidden, group_), weight()); }
  at::Tensor weight() const override { return tied_ ? tied_->weight() : weight_; }

 private:
  runtime::Communicator& group_;
  std::shared_ptr<model::Embedding> tied_;  // not registered: the embedding owns its weight
  at::Tensor weight_;
};

// RMSNorm applied to this rank's heads only: each rank sees part of the weight's gradient, so the weight enters
// through copy_to_group (identity forward, all-reduce backward).
class ShardedHeadsRMSNorm : public model::RMSNorm {
 public:
  ShardedHeadsRMSNorm(int64_t dim, double eps, runtime::Communicator& g) : RMSNorm(dim, eps), group_(g) {}
  at::Tensor forward(const at::Tensor& x) override { return copy_to_group(weight, group_) * normalize(x); }

 private:
  runtime::Communicator& group_;
};

class TensorParallelFactory : public model::LayerFactory {
 public:
  explicit TensorParallelFactory(runtime::Communicator& g) : group_(g) {}
  std::shared_ptr<model::Projection> column(int64_t in, int64_t out, bool bias) override {
    return std::make_shared<ColumnParallel>(in, out, bias, group_);
  }
  std::shared_ptr<model::Projection> row(int64_t in, int64_t out, bool bias) override {
    return std::make_shared<RowParallel>(in, out, bias, group_);
  }
  std::shared_ptr<model::Embedding> embedding(int64_t vocab, int64_t hidden) override {
    return std::make_shared<VocabParallelEmbedding>(vocab, hidden, group_);
  }
  std::shared_ptr<model::LmHead> lm_head(int64_t hidden, int64_t vocab,
                                         const std::shared_ptr<model::Embedding>& tied) override {
    return std::make_shared<VocabParallelLmHead>(hidden, vocab, tied, group_);
  }
  std::shared_ptr<model::RMSNorm> head_norm(int64_t head_dim, double eps) override {
    return std::make_shared<ShardedHeadsRMSNorm>(head_dim, eps, group_);
  }
  int64_t tp_size() const override { return group_.size(); }
  int64_t tp_rank() const override { return group_.rank(); }

 private:
  runtime::Communicator& group_;
};

}  // namespace

std::unique_ptr<model::LayerFactory> tensor_parallel_layer_factory(runtime::Communicator& group) {
  return std::make_unique<TensorParallelFactory>(group);
}

}  // namespace aligntrain::parallel
