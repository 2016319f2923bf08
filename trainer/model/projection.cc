// Dense (single-rank) layers for LayerFactory; see projection.h.
#include "trainer/model/projection.h"

#include <ATen/ops/embedding.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/linear.h>

namespace aligntrain::model {

namespace {

class DenseProjection : public Projection {
 public:
  DenseProjection(int64_t in, int64_t out, bool bias) {
    weight_ = register_parameter("weight", at::empty({out, in}));
    if (bias) bias_ = register_parameter("bias", at::empty({out}));
  }
  at::Tensor forward(const at::Tensor& x) override { return at::linear(x, weight_, bias_); }

 private:
  at::Tensor weight_, bias_;
};

class DenseEmbedding : public Embedding {
 public:
  DenseEmbedding(int64_t vocab, int64_t hidden) { weight_ = register_parameter("weight", at::empty({vocab, hidden})); }
  at::Tensor forward(const at::Tensor& ids) override { return at::embedding(weight_, ids); }
  at::Tensor weight() const override { return weight_; }

 private:
  at::Tensor weight_;
};

class DenseLmHead : public LmHead {
 public:
  DenseLmHead(int64_t hidden, int64_t vocab, std::shared_ptr<Embedding> tied) : tied_(std::move(tied)) {
    if (!tied_) weight_ = register_parameter("weight", at::empty({vocab, hidden}));
  }
  at::Tensor forward(const at::Tensor& hidden) override { return at::linear(hidden, weight()); }
  at::Tensor weight() const override { return tied_ ? tied_->weight() : weight_; }

 private:
  std::shared_ptr<Embedding> tied_;  // not registered: its weight belongs to the embedding
  at::Tensor weight_;
};

class DenseFactory : public LayerFactory {
 public:
  std::shared_ptr<Projection> column(int64_t in, int64_t out, bool bias) override {
    return std::make_shared<DenseProjection>(in, out, bias);
  }
  std::shared_ptr<Projection> row(int64_t in, int64_t out, bool bias) override {
    return std::make_shared<DenseProjection>(in, out, bias);
  }
  std::shared_ptr<Embedding> embedding(int64_t vocab, int64_t hidden) override {
    return std::make_shared<DenseEmbedding>(vocab, hidden);
  }
  std::shared_ptr<LmHead> lm_head(int64_t hidden, int64_t vocab, const std::shared_ptr<Embedding>& tied) override {
    return std::make_shared<DenseLmHead>(hidden, vocab, tied);
  }
  std::shared_ptr<RMSNorm> head_norm(int64_t head_dim, double eps) override {
    return std::make_shared<RMSNorm>(head_dim, eps);
  }
  int64_t tp_size() const override { return 1; }
  int64_t tp_rank() const override { return 0; }
};

}  // namespace

std::unique_ptr<LayerFactory> dense_layer_factory() { return std::make_unique<DenseFactory>(); }

}  // namespace aligntrain::model
