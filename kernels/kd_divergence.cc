// See kd_divergence.h.
#include "kernels/kd_divergence.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace aligntrain::kernels {

namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("kd_divergence_rows: " + what);
}

std::string shape(const at::Tensor& t) { return t.defined() ? c10::str(t.sizes()) : "undefined"; }

void combine(at::Tensor& t, const std::function<void(at::Tensor&)>& op) {
  if (op) op(t);
}

}  // namespace

at::Tensor kd_divergence_rows(const at::Tensor& teacher_logits, at::Tensor& student_logits,
                              const at::Tensor& grad_weights, Divergence divergence, double jsd_beta,
                              double temperature, const ShardReduce& g, int64_t block_rows) {
  require(teacher_logits.defined() && teacher_logits.dim() == 2 && teacher_logits.size(1) > 0,
          "teacher_logits must be [N, V/p], got " + shape(teacher_logits));
  require(student_logits.defined() && student_logits.sizes() == teacher_logits.sizes(),
          "student_logits " + shape(student_logits) + " must have teacher_logits' shape " + shape(teacher_logits));
  require(temperature > 0.0, "temperature must be > 0, got " + std::to_string(temperature));
  const int64_t n = student_logits.size(0), width = student_logits.size(1);
  const auto type = student_logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const bool grad = grad_weights.defined();
  if (grad) {
    require(grad_weights.dim() == 1 && grad_weights.size(0) == n,
            "grad_weights must be [N] with N = " + std::to_string(n) + ", got " + shape(grad_weights));
    require(student_logits.is_contiguous() && student_logits.scalar_type() == type,
            "student_logits must be contiguous and fp32 (fp64) to receive the gradient");
  }
  if (divergence == Divergence::jsd) {
    require(jsd_beta >= 0.0 && jsd_beta <= 1.0, "jsd_beta must be in [0, 1], got " + std::to_string(jsd_beta));
    // TRL's endpoints: the formula tends to 0 there, the convention makes them the two KLs.
    if (jsd_beta == 0.0) divergence = Divergence::forward_kl;
    if (jsd_beta == 1.0) divergence = Divergence::reverse_kl;
  }
  if (block_rows <= 0) block_rows = std::max<int64_t>(1, (int64_t{2} << 20) / (width * 4));

  at::NoGradGuard no_grad;
  auto out = at::empty({n}, student_logits.options().dtype(type));
  for (int64_t start = 0; start < n; start += block_rows) {
    const int64_t r = std::min(block_rows, n - start);
    // log-softmax of both over the full vocabulary: the row maxima all-reduced, then the sums of exponentials;
    // (z − m) − log s, not z − (m + log s), whose rounding at large m costs the reverse-KL gradient ~20x accuracy.
    auto lp = teacher_logits.narrow(0, start, r).to(type).div(temperature);
    auto lq = student_logits.narrow(0, start, r).to(type).div(temperature);
    auto m = at::stack({std::get<0>(lp.max(-1)), std::get<0>(lq.max(-1))});  // [2, r]
    combine(m, g.max);
    auto s = at::stack({(lp - m[0].unsqueeze(-1)).exp_().sum(-1), (lq - m[1].unsqueeze(-1)).exp_().sum(-1)});
    combine(s, g.sum);
    s.log_();
    lp.sub_(m[0].unsqueeze(-1)).sub_(s[0].unsqueeze(-1));
    lq.sub_(m[1].unsqueeze(-1)).sub_(s[1].unsqueeze(-1));
    const auto q = lq.exp();

    // This rank's share of D and, for the softmax-Jacobian form of the gradient, G (up to a constant) and ⟨q, G⟩.
    at::Tensor value, gq, p;
    switch (divergence) {
      case Divergence::forward_kl:  // ∂D/∂z = (q − p)/τ directly
        p = lp.exp();
        value = (p * (lp - lq)).sum(-1);
        break;
      case Divergence::reverse_kl:  // G = log q − log p + 1
        gq = lq - lp;
        value = (q * gq).sum(-1);
        break;
      case Divergence::tvd: {  // G = ½ sign(q − p)
        auto diff = q - lp.exp();
        value = 0.5 * diff.abs().sum(-1);
        gq = diff.sign_().mul_(0.5);
        break;
      }
      case Divergence::jsd: {
        // log m = logsumexp(log β + log p, log(1−β) + log q): no log(0). G = (1−β)(log q − log m).
        const auto lm = at::logaddexp(lp + std::log(jsd_beta), lq + std::log1p(-jsd_beta));
        value = (jsd_beta * lp.exp() * (lp - lm) + (1.0 - jsd_beta) * q * (lq - lm)).sum(-1);
        gq = (lq - lm).mul_(1.0 - jsd_beta);
        break;
      }
    }
    auto sums = grad && gq.defined() ? at::stack({value, (q * gq).sum(-1)}) : value.unsqueeze(0);
    combine(sums, g.sum);
    out.narrow(0, start, r).copy_(sums[0]);
    if (!grad) continue;
    const auto scale = grad_weights.narrow(0, start, r).to(type).div(temperature).unsqueeze(-1);
    const auto d = gq.defined() ? gq.sub_(sums[1].unsqueeze(-1)).mul_(q).mul_(scale) : (q - p).mul_(scale);
    student_logits.narrow(0, start, r).copy_(d);
  }
  return out;
}

}  // namespace aligntrain::kernels
