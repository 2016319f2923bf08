// See layers.h.
#include "trainer/parallel/layers.h"

#include <ATen/ATen.h>

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

class VocabParallelEmbedding : public model::Embedding {
 public:
  VocabParallelEmbedding(int64_t vocab, int64_t hidden, runtime::Communicator& g) : group_(g) {
    local_ = shard_size(vocab, g, "vocab_size");
    start_ = g.rank() * local_;
    weight_ = register_parameter("weight", at::empty({local_, hidden}));
  }
  at::Tensor forward(const at::Tensor& ids) override {
    if (group_.size() == 1) return at::embedding(weight_, ids);
    const auto outside = ids.lt(start_).logical_or(ids.ge(start_ + local_));
    const auto local_ids = at::where(outside, at::zeros_like(ids), ids - start_);
    const auto rows = at::embedding(weight_, local_ids).masked_fill(outside.unsqueeze(-1), 0.0);
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
