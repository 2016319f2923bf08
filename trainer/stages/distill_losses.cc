// See distill_losses.h.
#include "trainer/stages/distill_losses.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <stdexcept>

#include "config/resolve.h"
#include "kernels/token_logprobs.h"
#include "kernels/kd_divergence.h"
#include "trainer/model/logprobs.h"
#include "trainer/parallel/vocab_parallel.h"

namespace aligntrain::stages {

namespace {

kernels::Divergence divergence_of(config::Divergence d) {
  switch (d) {
    case config::Divergence::forward_kl: return kernels::Divergence::forward_kl;
    case config::Divergence::reverse_kl: return kernels::Divergence::reverse_kl;
    case config::Divergence::jsd: return kernels::Divergence::jsd;
    case config::Divergence::tvd: return kernels::Divergence::tvd;
  }
  throw std::logic_error("unknown divergence");
}

objectives::AlignDistilMode mode_of(config::AlignDistilMode m) {
  switch (m) {
    case config::AlignDistilMode::published: return objectives::AlignDistilMode::aligndistil;
    case config::AlignDistilMode::theorem1: return objectives::AlignDistilMode::theorem1;
    case config::AlignDistilMode::contrast: return objectives::AlignDistilMode::theorem1_contrast;
    case config::AlignDistilMode::theorem1_adaptive: return objectives::AlignDistilMode::theorem1_adaptive;
  }
  throw std::logic_error("unknown AlignDistil mode");
}

// kd: (1 − kd_ratio)·NLL + kd_ratio·D(teacher ‖ student) at `temperature` on the one response column, through the
// fused kernel (kernels/kd_divergence.h), which writes its own gradient.
class Kd : public DistillLoss {
 public:
  explicit Kd(const config::LossConfig& l) : l_(l) {}
  double nll_weight(int64_t c) const override { return c == 0 ? 1.0 - l_.kd_ratio : 0.0; }
  double distill_weight(int64_t c) const override { return c == 0 ? l_.kd_ratio : 0.0; }
  bool has_divergence(int64_t c) const override { return c == 0; }
  at::Tensor divergence(const DivergenceInput& in) const override {
    const auto div = divergence_of(l_.divergence);
    // The teacher's logits of every chunk go into one buffer (a frozen head: a plain product of its rows).
    const auto t_weight = in.teacher->lm_head->weight().detach();
    const int64_t rows =
        std::min(kernels::logits_chunk_rows(in.student_head.weight().size(0)), in.teacher_hidden.size(0));
    const auto t_buffer = at::empty({rows, t_weight.size(0)}, t_weight.options());
    const auto& t_sel = in.teacher_hidden;
    const kernels::ShardReduce shards = parallel::shard_reduce(in.tp);
    const objectives::ChunkGradTerm term = [&, div, t_weight, t_buffer](at::Tensor& q, const at::Tensor& grad_weights,
                                                                         int64_t start, int64_t n) {
      auto p = n <= t_buffer.size(0) ? t_buffer.narrow(0, 0, n) : at::empty({n, t_weight.size(0)}, t_weight.options());
      at::mm_out(p, t_sel.narrow(0, start, n).to(t_weight.scalar_type()), t_weight.t());
      return kernels::kd_divergence_rows(p, q, grad_weights, div, l_.jsd_beta, l_.temperature, shards);
    };
    return objectives::chunked_token_loss(in.student_hidden, in.student_head, in.weights, term, in.tp);
  }
  StepMetrics metrics(double nll, double d0, double) const override {
    return {{"loss", (1 - l_.kd_ratio) * nll + l_.kd_ratio * d0},
            {"nll", nll},
            {"kd/" + std::string(config::name_of(l_.divergence)), d0}};
  }

 private:
  const config::LossConfig& l_;
};

// dckd: sft_weight·NLL(chosen) + chosen_distil_weight·KL_k+1(chosen) + rejected_distil_weight·KL_k+1(rejected).
class Dckd : public DistillLoss {
 public:
  explicit Dckd(const config::LossConfig& l) : l_(l) {}
  double nll_weight(int64_t c) const override { return c == 0 ? l_.sft_weight : 0.0; }
  double distill_weight(int64_t c) const override { return c == 0 ? l_.chosen_distil_weight : l_.rejected_distil_weight; }
  bool has_divergence(int64_t c) const override { return c == 0 || distill_weight(c) > 0; }
  at::Tensor divergence(const DivergenceInput& in) const override {
    const objectives::ChunkTerm term = [&](const at::Tensor& q, int64_t start, int64_t n) {
      return objectives::dckd_kl(q, in.table(false, start, n), in.vocab, in.tp);
    };
    return objectives::chunked_token_loss(in.student_hidden, in.student_head, in.weights, term, in.tp);
  }
  StepMetrics metrics(double nll, double d0, double d1) const override {
    return {{"loss", l_.sft_weight * nll + l_.chosen_distil_weight * d0 + l_.rejected_distil_weight * d1},
            {"nll", nll},
            {"kl/chosen", d0},
            {"kl/rejected", d1}};
  }

 private:
  const config::LossConfig& l_;
};

// adpa: sft_weight·NLL(chosen) + adpa_weight·ADPA(ŷ), advantages log π_teacher − log π_teacher_reference over the
// teacher's top-k, on the student's own response (column 1).
class Adpa : public DistillLoss {
 public:
  explicit Adpa(const config::LossConfig& l) : l_(l) {}
  double nll_weight(int64_t c) const override { return c == 0 ? l_.sft_weight : 0.0; }
  double distill_weight(int64_t c) const override { return c == 1 ? l_.adpa_weight : 0.0; }
  bool has_divergence(int64_t c) const override { return c == 1; }
  at::Tensor divergence(const DivergenceInput& in) const override {
    const objectives::ChunkTerm term = [&](const at::Tensor& q, int64_t start, int64_t n) {
      const auto dpo = in.table(false, start, n), ref = in.table(true, start, n);
      return objectives::adpa_term(q, objectives::adpa_advantages(dpo, ref), {l_.adpa_clamp_targets, 1.0}, in.tp);
    };
    return objectives::chunked_token_loss(in.student_hidden, in.student_head, in.weights, term, in.tp);
  }
  StepMetrics metrics(double nll, double, double d1) const override {
    return {{"loss", l_.sft_weight * nll + l_.adpa_weight * d1}, {"nll", nll}, {"adpa", d1}};
  }

 private:
  const config::LossConfig& l_;
};

// aligndistil: (1 − kd_ratio)·NLL + kd_ratio·AlignDistil(teacher = DPO model, teacher_reference), with the
// seq-token mean (aligndistil_len_norm) or sequence sums averaged over sequences.
class AlignDistil : public DistillLoss {
 public:
  explicit AlignDistil(const config::LossConfig& l) : l_(l) {
    o_.mode = mode_of(l.aligndistil_mode);
    o_.beta = config::resolved_beta(l);
    o_.beta2 = l.aligndistil_beta2;
    o_.temperature = l.temperature;
  }
  double nll_weight(int64_t c) const override { return c == 0 ? 1.0 - l_.kd_ratio : 0.0; }
  double distill_weight(int64_t c) const override { return c == 0 ? l_.kd_ratio : 0.0; }
  bool has_divergence(int64_t c) const override { return c == 0; }
  bool own_positions() const override { return l_.aligndistil_mask == config::AlignDistilMask::faithful; }
  at::Tensor position_weights(const at::Tensor& pos_mask, const at::Tensor& selected, double,
                              int64_t sequences) const override {
    const auto per_row = pos_mask.sum(1, /*keepdim=*/true).to(at::kFloat).clamp_min(1.0);  // [B, 1]
    auto w = l_.aligndistil_len_norm ? 1.0 / per_row : at::ones_like(per_row);
    w = (w / static_cast<double>(std::max<int64_t>(sequences, 1))).expand_as(pos_mask);
    return w.reshape({-1}).index_select(0, selected).contiguous();
  }
  at::Tensor divergence(const DivergenceInput& in) const override {
    const objectives::ChunkTerm term = [&](const at::Tensor& q, int64_t start, int64_t n) {
      return objectives::aligndistil(q, in.teacher->lm_head_forward(in.teacher_hidden.narrow(0, start, n)),
                                     in.reference->lm_head_forward(in.reference_hidden.narrow(0, start, n)), o_, in.tp);
    };
    return objectives::chunked_token_loss(in.student_hidden, in.student_head, in.weights, term, in.tp);
  }
  StepMetrics metrics(double nll, double d0, double) const override {
    return {{"loss", (1 - l_.kd_ratio) * nll + l_.kd_ratio * d0}, {"nll", nll}, {"aligndistil", d0}};
  }

 private:
  const config::LossConfig& l_;
  objectives::AlignDistilOptions o_;
};

}  // namespace

at::Tensor DistillLoss::position_weights(const at::Tensor&, const at::Tensor& selected, double tokens,
                                         int64_t) const {
  return at::full({selected.size(0)}, 1.0 / tokens, at::TensorOptions().dtype(at::kFloat).device(selected.device()));
}

std::unique_ptr<DistillLoss> make_distill_loss(DistillMethod method, const config::LossConfig& loss) {
  switch (method) {
    case DistillMethod::kd: return std::make_unique<Kd>(loss);
    case DistillMethod::dckd: return std::make_unique<Dckd>(loss);
    case DistillMethod::adpa: return std::make_unique<Adpa>(loss);
    case DistillMethod::aligndistil: return std::make_unique<AlignDistil>(loss);
  }
  throw std::logic_error("unknown distillation method");
}

}  // namespace aligntrain::stages
