#include "trainer/objectives/online.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace aligntrain::objectives {

namespace {

constexpr double kStdEps = 1e-4;  // TRL's (std + 1e-4)

void check_groups(const at::Tensor& rewards, int64_t group_size) {
  if (rewards.dim() != 1) throw std::invalid_argument("online advantages: rewards must be 1-dimensional");
  if (group_size < 1 || rewards.numel() % group_size != 0) {
    throw std::invalid_argument("online advantages: " + std::to_string(rewards.numel()) +
                                " rewards are not groups of " + std::to_string(group_size));
  }
}

// Bessel-corrected std of every row of `x` [N, K] (0 for K = 1).
at::Tensor row_std(const at::Tensor& x) {
  if (x.size(1) < 2) return at::zeros({x.size(0)}, x.options());
  return x.std(1, /*unbiased=*/true);
}

}  // namespace

at::Tensor grpo_advantages(const at::Tensor& rewards, int64_t group_size, RewardScaling scaling) {
  check_groups(rewards, group_size);
  const at::Tensor grouped = rewards.view({-1, group_size});
  const at::Tensor mean = grouped.mean(1).repeat_interleave(group_size);
  const at::Tensor centred = rewards - mean;
  switch (scaling) {
    case RewardScaling::kNone:
      return centred;
    case RewardScaling::kGroup:
      return centred / (row_std(grouped).repeat_interleave(group_size) + kStdEps);
    case RewardScaling::kBatch:
      return centred / (row_std(rewards.view({1, -1})).expand_as(rewards) + kStdEps);
  }
  throw std::logic_error("grpo_advantages: unknown scaling");
}

at::Tensor rloo_kl_rewards(const at::Tensor& rewards, const at::Tensor& old_logps, const at::Tensor& ref_logps,
                           const at::Tensor& mask, double beta) {
  if (beta == 0.0) return rewards;
  const at::Tensor kl = ((old_logps - ref_logps) * mask).sum(-1);
  return rewards - beta * kl.to(rewards.scalar_type());
}

at::Tensor rloo_advantages(const at::Tensor& rewards, int64_t group_size, bool normalize) {
  check_groups(rewards, group_size);
  at::Tensor advantages;
  if (group_size == 1) {
    advantages = at::zeros_like(rewards);
  } else {
    const at::Tensor grouped = rewards.view({-1, group_size});
    const at::Tensor baseline = (grouped.sum(1, /*keepdim=*/true) - grouped) / static_cast<double>(group_size - 1);
    advantages = rewards - baseline.reshape({-1});
  }
  if (normalize) {
    advantages = (advantages - advantages.mean()) / (row_std(advantages.view({1, -1})).expand_as(advantages) + kStdEps);
  }
  return advantages;
}

GrpoTokenTerms grpo_token_loss(const at::Tensor& logps, const at::Tensor& old_logps, const at::Tensor& ref_logps,
                               const at::Tensor& advantages, const at::Tensor& mask, ClipRange clip, double beta,
                               ImportanceLevel level) {
  const at::Tensor log_ratio = logps - old_logps;
  at::Tensor log_weight = log_ratio;
  if (level == ImportanceLevel::kSequence) {
    log_weight = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)).unsqueeze(-1);
  }
  const at::Tensor ratio = log_weight.exp();
  const at::Tensor a = advantages.unsqueeze(-1).to(ratio.scalar_type());
  const at::Tensor clipped_ratio = ratio.clamp(1.0 - clip.low, 1.0 + clip.high);
  GrpoTokenTerms out;
  out.loss = -at::min(ratio * a, clipped_ratio * a);
  {
    const at::Tensor r = ratio.detach().expand_as(logps);
    const at::Tensor adv = a.expand_as(logps);
    out.clipped = ((r < 1.0 - clip.low) & (adv < 0)) | ((r > 1.0 + clip.high) & (adv > 0));
  }
  if (beta != 0.0) {
    if (!ref_logps.defined()) throw std::invalid_argument("grpo_token_loss: beta != 0 needs the reference's log-probs");
    const at::Tensor d = ref_logps - logps;
    out.kl = d.exp() - d - 1.0;
    out.loss = out.loss + beta * out.kl;
  }
  if (out.loss.sizes() != logps.sizes()) out.loss = out.loss.expand_as(logps);
  return out;
}

at::Tensor aggregate_grpo_loss(const at::Tensor& token_loss, const at::Tensor& mask, GrpoAggregation aggregation,
                               const GlobalBatch& batch) {
  const at::Tensor masked = token_loss * mask;
  switch (aggregation) {
    case GrpoAggregation::kGrpo:
      if (batch.sequences < 1) throw std::invalid_argument("aggregate_grpo_loss: no sequences in the global batch");
      return (masked.sum(-1) / mask.sum(-1).clamp_min(1.0)).sum() / static_cast<double>(batch.sequences);
    case GrpoAggregation::kBnpo:
    case GrpoAggregation::kDapo:
      return masked.sum() / std::max(1.0, batch.completion_tokens);
    case GrpoAggregation::kDrGrpo:
      if (batch.sequences < 1 || batch.max_completion_length < 1) {
        throw std::invalid_argument("aggregate_grpo_loss: dr_grpo needs sequences and max_completion_length");
      }
      return masked.sum() / (static_cast<double>(batch.sequences) * static_cast<double>(batch.max_completion_length));
  }
  throw std::logic_error("aggregate_grpo_loss: unknown aggregation");
}

RlooSequenceTerms rloo_sequence_loss(const at::Tensor& logps, const at::Tensor& old_logps, const at::Tensor& advantages,
                                     const at::Tensor& mask, ClipRange clip) {
  const at::Tensor ratio = ((logps * mask).sum(-1) - (old_logps * mask).sum(-1)).exp();
  const at::Tensor a = advantages.to(ratio.scalar_type());
  RlooSequenceTerms out;
  out.loss = -at::min(ratio * a, ratio.clamp(1.0 - clip.low, 1.0 + clip.high) * a);
  const at::Tensor r = ratio.detach();
  out.clipped = ((r < 1.0 - clip.low) & (a < 0)) | ((r > 1.0 + clip.high) & (a > 0));
  return out;
}

at::Tensor fdpg_f_prime(const at::Tensor& log_t, FDivergence divergence) {
  switch (divergence) {
    case FDivergence::kForwardKl:
      return -(-log_t).exp();  // −1/t
    case FDivergence::kReverseKl:
      return log_t + 1.0;
    case FDivergence::kJensenShannon:
      return std::log(2.0) - at::softplus(-log_t);
    case FDivergence::kTotalVariation:
      return 0.5 * log_t.sign();
  }
  throw std::logic_error("fdpg_f_prime: unknown divergence");
}

at::Tensor fdpg_pseudo_rewards(const at::Tensor& policy_logps, const at::Tensor& target_logps, double log_z,
                               FDivergence divergence) {
  const at::Tensor log_t = policy_logps.detach() - (target_logps - log_z);
  return -fdpg_f_prime(log_t, divergence);
}

at::Tensor fdpg_sample_loss(const at::Tensor& policy_logps, const at::Tensor& proposal_logps,
                            const at::Tensor& advantages) {
  const at::Tensor weights = (policy_logps.detach() - proposal_logps).exp();
  return weights * (-advantages.to(policy_logps.scalar_type())) * policy_logps;
}

WindowedBaseline::WindowedBaseline(int64_t window) : window_(window) {
  if (window < 1) throw std::invalid_argument("f-DPG baseline window must be at least 1");
}

at::Tensor WindowedBaseline::advantages(const at::Tensor& rewards) {
  const at::Tensor r = rewards.to(at::kCPU).to(at::kDouble).contiguous();
  const at::Tensor a = value_ ? r - *value_ : r.clone();
  const double* p = r.data_ptr<double>();
  for (int64_t i = 0; i < r.numel(); ++i) buffer_.push_back(p[i]);
  while (static_cast<int64_t>(buffer_.size()) > window_) buffer_.pop_front();
  double sum = 0.0;  // in window order, as Python's sum() over the list
  for (const double v : buffer_) sum += v;
  if (!buffer_.empty()) value_ = sum / static_cast<double>(buffer_.size());
  return a;
}

void WindowedBaseline::load_state(const std::vector<double>& values) {
  buffer_.assign(values.begin(), values.end());
  while (static_cast<int64_t>(buffer_.size()) > window_) buffer_.pop_front();
  value_.reset();
  if (!buffer_.empty()) {
    double sum = 0.0;
    for (const double v : buffer_) sum += v;
    value_ = sum / static_cast<double>(buffer_.size());
  }
}

}  // namespace aligntrain::objectives
