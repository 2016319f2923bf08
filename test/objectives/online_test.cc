// trainer/objectives/online.h: the worked numbers of METHODS.md §G (GRPO and RLOO advantages; ρ and the grpo, dapo
// and dr_grpo losses of the two-completion example) and §D.2 (f-DPG's Jensen–Shannon pseudo-rewards); f′ of every
// divergence at points computed by hand; gradients against central finite differences in fp64; the global-batch
// aggregation summed over parts equal to the whole; disco's windowed baseline.
#include "trainer/objectives/online.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

namespace aligntrain::objectives {
namespace {

at::Tensor T(const std::vector<double>& v) { return at::tensor(v, at::kDouble); }
at::Tensor T2(const std::vector<std::vector<double>>& rows) {
  std::vector<at::Tensor> r;
  for (const auto& v : rows) r.push_back(T(v));
  return at::stack(r);
}

void expect_values(const at::Tensor& t, const std::vector<double>& want, double tol) {
  const auto c = t.detach().to(at::kDouble).contiguous().view({-1});
  ASSERT_EQ(c.numel(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(c[static_cast<int64_t>(i)].item<double>(), want[i], tol) << i;
}

// The two-completion example of §G: lengths 3 and 2 (the padded position holds 0).
struct Example {
  at::Tensor logps = T2({{-1, -0.5, -2}, {-0.2, -1.5, 0}});
  at::Tensor old_logps = T2({{-1.2, -0.5, -1}, {-0.2, -1, 0}});
  at::Tensor ref_logps = T2({{-1.1, -0.7, -1.5}, {-0.3, -1.2, 0}});
  at::Tensor mask = T2({{1, 1, 1}, {1, 1, 0}});
  at::Tensor advantages = T({0.8, -0.5});
  ClipRange clip{0.2, 0.28};
  double beta = 0.04;
};

double example_loss(const at::Tensor& logps, GrpoAggregation agg) {
  Example e;
  const auto terms = grpo_token_loss(logps, e.old_logps, e.ref_logps, e.advantages, e.mask, e.clip, e.beta,
                                     ImportanceLevel::kToken);
  return aggregate_grpo_loss(terms.loss, e.mask, agg, {2, 5.0, 4}).item<double>();
}

TEST(GrpoAdvantages, WorkedGroup) {
  expect_values(grpo_advantages(T({1, 0, 0, 1}), 4, RewardScaling::kGroup),
                {0.865875, -0.865875, -0.865875, 0.865875}, 1e-6);
  expect_values(grpo_advantages(T({1, 0, 0, 1}), 4, RewardScaling::kNone), {0.5, -0.5, -0.5, 0.5}, 1e-12);
}

TEST(GrpoAdvantages, GroupsAreSeparateAndBatchScalingUsesEveryReward) {
  // Two groups of 2: [1, 3] and [10, 10]. Group std: √2 and 0; batch std of all four: 4.7258...
  const auto r = T({1, 3, 10, 10});
  expect_values(grpo_advantages(r, 2, RewardScaling::kGroup),
                {-1 / (std::sqrt(2.0) + 1e-4), 1 / (std::sqrt(2.0) + 1e-4), 0, 0}, 1e-12);
  const double batch_std = std::sqrt(((1 - 6.0) * (1 - 6.0) + 9 + 16 + 16) / 3.0);
  expect_values(grpo_advantages(r, 2, RewardScaling::kBatch),
                {-1 / (batch_std + 1e-4), 1 / (batch_std + 1e-4), 0, 0}, 1e-12);
  EXPECT_THROW(grpo_advantages(T({1, 2, 3}), 2, RewardScaling::kGroup), std::invalid_argument);
}

TEST(RlooAdvantages, WorkedGroupAndNormalisation) {
  expect_values(rloo_advantages(T({1, 0, 0, 1}), 4, false), {2.0 / 3, -2.0 / 3, -2.0 / 3, 2.0 / 3}, 1e-12);
  // Group [3, 0, 0]: 3 − 0 = 3, 0 − 1.5 = −1.5 twice; normalised: mean 0, std 2.598...
  const auto a = rloo_advantages(T({3, 0, 0}), 3, true);
  const double s = std::sqrt((9.0 + 2.25 + 2.25) / 2.0);
  expect_values(a, {3 / (s + 1e-4), -1.5 / (s + 1e-4), -1.5 / (s + 1e-4)}, 1e-12);
  expect_values(rloo_advantages(T({5, 7}), 1, false), {0, 0}, 0);
}

TEST(RlooAdvantages, KlFoldedIntoTheReward) {
  Example e;
  // Σ m (ℓ^old − ℓ^ref): row 0: −0.1 + 0.2 + 0.5 = 0.6; row 1: 0.1 + 0.2 = 0.3.
  expect_values(rloo_kl_rewards(T({1, 2}), e.old_logps, e.ref_logps, e.mask, 0.05), {1 - 0.03, 2 - 0.015}, 1e-12);
  expect_values(rloo_kl_rewards(T({1, 2}), e.old_logps, e.ref_logps, e.mask, 0.0), {1, 2}, 0);
}

TEST(GrpoLoss, WorkedExample) {
  Example e;
  const auto terms = grpo_token_loss(e.logps, e.old_logps, e.ref_logps, e.advantages, e.mask, e.clip, e.beta,
                                     ImportanceLevel::kToken);
  const auto ratio = (e.logps - e.old_logps).exp();
  expect_values(ratio.narrow(1, 0, 2), {1.221403, 1, 1, 0.606531}, 1e-6);
  EXPECT_NEAR(ratio[0][2].item<double>(), 0.367879, 1e-6);
  EXPECT_NEAR(example_loss(e.logps, GrpoAggregation::kGrpo), -0.118542, 1e-6);
  EXPECT_NEAR(example_loss(e.logps, GrpoAggregation::kDapo), -0.232469, 1e-6);
  EXPECT_NEAR(example_loss(e.logps, GrpoAggregation::kBnpo), -0.232469, 1e-6);
  EXPECT_NEAR(example_loss(e.logps, GrpoAggregation::kDrGrpo), -0.145293, 1e-6);
  // Clipped: token (0,0) has ρ = 1.2214 < 1.28 (not clipped); (1,1) has ρ = 0.6065 < 0.8 with A < 0.
  const auto c = terms.clipped.to(at::kDouble);
  expect_values(c, {0, 0, 0, 0, 1, 0}, 0);
}

TEST(GrpoLoss, WithoutReferenceAndSequenceLevel) {
  Example e;
  const auto no_ref = grpo_token_loss(e.logps, e.old_logps, at::Tensor(), e.advantages, e.mask, e.clip, 0.0,
                                      ImportanceLevel::kToken);
  EXPECT_FALSE(no_ref.kl.defined());
  // Token (0,1): ρ = 1, A = 0.8 → −0.8.
  EXPECT_NEAR(no_ref.loss[0][1].item<double>(), -0.8, 1e-12);
  EXPECT_THROW(grpo_token_loss(e.logps, e.old_logps, at::Tensor(), e.advantages, e.mask, e.clip, 0.1,
                               ImportanceLevel::kToken),
               std::invalid_argument);
  // Sequence level: one ρ per row from the masked mean log-ratio: row 0 (0.2 + 0 − 1)/3, row 1 (0 − 0.5)/2.
  const auto seq = grpo_token_loss(e.logps, e.old_logps, at::Tensor(), e.advantages, e.mask, e.clip, 0.0,
                                   ImportanceLevel::kSequence);
  const double r0 = std::exp(-0.8 / 3), r1 = std::exp(-0.25);
  const double l0 = -std::min(r0 * 0.8, std::clamp(r0, 0.8, 1.28) * 0.8);
  const double l1 = -std::min(r1 * -0.5, std::clamp(r1, 0.8, 1.28) * -0.5);
  expect_values(seq.loss, {l0, l0, l0, l1, l1, l1}, 1e-12);
}

TEST(GrpoLoss, GradientsMatchFiniteDifferences) {
  for (const auto agg : {GrpoAggregation::kGrpo, GrpoAggregation::kDapo, GrpoAggregation::kDrGrpo}) {
    Example e;
    auto x = e.logps.clone().requires_grad_(true);
    Example f;
    const auto terms = grpo_token_loss(x, f.old_logps, f.ref_logps, f.advantages, f.mask, f.clip, f.beta,
                                       ImportanceLevel::kToken);
    aggregate_grpo_loss(terms.loss, f.mask, agg, {2, 5.0, 4}).backward();
    const double h = 1e-6;
    for (int64_t i = 0; i < 2; ++i) {
      for (int64_t j = 0; j < 3; ++j) {
        auto up = e.logps.clone(), down = e.logps.clone();
        up[i][j] += h;
        down[i][j] -= h;
        const double fd = (example_loss(up, agg) - example_loss(down, agg)) / (2 * h);
        EXPECT_NEAR(x.grad()[i][j].item<double>(), fd, 1e-7) << "aggregation " << static_cast<int>(agg) << " " << i
                                                               << "," << j;
      }
    }
  }
}

TEST(GrpoLoss, PartsOfTheGlobalBatchSumToTheWhole) {
  // Four sequences split into two parts: each part's aggregated value with the global counts sums to the whole.
  const auto loss = T2({{0.3, -1.2, 0.5}, {2.0, 0.1, 0.0}, {-0.7, 0.4, 0.9}, {1.5, 0.0, 0.0}});
  const auto mask = T2({{1, 1, 1}, {1, 1, 0}, {1, 1, 1}, {1, 0, 0}});
  const GlobalBatch all{4, 9.0, 3};
  for (const auto agg : {GrpoAggregation::kGrpo, GrpoAggregation::kDapo, GrpoAggregation::kDrGrpo}) {
    const double whole = aggregate_grpo_loss(loss, mask, agg, all).item<double>();
    const double parts = aggregate_grpo_loss(loss.narrow(0, 0, 1), mask.narrow(0, 0, 1), agg, all).item<double>() +
                         aggregate_grpo_loss(loss.narrow(0, 1, 3), mask.narrow(0, 1, 3), agg, all).item<double>();
    EXPECT_NEAR(parts, whole, 1e-12);
  }
  // The grpo value is the mean of the per-sequence means, by hand.
  const double want = ((0.3 - 1.2 + 0.5) / 3 + (2.1) / 2 + (0.6) / 3 + 1.5) / 4;
  EXPECT_NEAR(aggregate_grpo_loss(loss, mask, GrpoAggregation::kGrpo, all).item<double>(), want, 1e-12);
}

TEST(RlooLoss, SequenceRatioAndClip) {
  Example e;
  // Σ m ℓ − Σ m ℓ^old: row 0: −3.5 − (−2.7) = −0.8; row 1: −1.7 − (−1.2) = −0.5.
  const auto out = rloo_sequence_loss(e.logps, e.old_logps, T({0.8, -0.5}), e.mask, {0.2, 0.2});
  const double r0 = std::exp(-0.8), r1 = std::exp(-0.5);
  expect_values(out.loss, {-std::min(r0 * 0.8, 0.8 * 0.8), -std::min(r1 * -0.5, 0.8 * -0.5)}, 1e-12);
  expect_values(out.clipped.to(at::kDouble), {0, 1}, 0);
}

TEST(Fdpg, FPrimeOfEachDivergence) {
  const auto log_t = T({-1.0, 0.0, 2.0});
  expect_values(fdpg_f_prime(log_t, FDivergence::kForwardKl), {-std::exp(1.0), -1.0, -std::exp(-2.0)}, 1e-12);
  expect_values(fdpg_f_prime(log_t, FDivergence::kReverseKl), {0.0, 1.0, 3.0}, 1e-12);
  // log(2t/(1+t)).
  expect_values(fdpg_f_prime(log_t, FDivergence::kJensenShannon),
                {std::log(2 * std::exp(-1.0) / (1 + std::exp(-1.0))), 0.0, std::log(2 * std::exp(2.0) / (1 + std::exp(2.0)))},
                1e-12);
  expect_values(fdpg_f_prime(log_t, FDivergence::kTotalVariation), {-0.5, 0.0, 0.5}, 0);
}

TEST(Fdpg, WorkedJensenShannonPseudoRewards) {
  const auto r = fdpg_pseudo_rewards(T({-3, -5, -4}), T({-3.5, -6, -2.5}), std::log(0.6), FDivergence::kJensenShannon);
  expect_values(r, {0.005427, -0.214969, 1.443322}, 1e-6);
}

TEST(Fdpg, SampleLossAndItsGradient) {
  auto logp = T({-3, -5, -4}).requires_grad_(true);
  const auto proposal = T({-3.2, -5, -3.5});
  const auto a = T({0.5, -1.0, 2.0});
  const auto loss = fdpg_sample_loss(logp, proposal, a);
  const std::vector<double> w = {std::exp(0.2), 1.0, std::exp(-0.5)};
  expect_values(loss, {w[0] * -0.5 * -3, w[1] * 1.0 * -5, w[2] * -2.0 * -4}, 1e-12);
  loss.sum().backward();  // the weights are detached: d/dlogπ = w·(−A)
  expect_values(logp.grad(), {-0.5 * w[0], 1.0 * w[1], -2.0 * w[2]}, 1e-12);
}

TEST(Fdpg, WindowedBaselineAsDisco) {
  WindowedBaseline b(3);
  EXPECT_FALSE(b.value());
  expect_values(b.advantages(T({1, 2})), {1, 2}, 0);  // no value yet: A = R
  EXPECT_DOUBLE_EQ(*b.value(), 1.5);
  expect_values(b.advantages(T({4, 6})), {2.5, 4.5}, 1e-15);  // value before the batch
  EXPECT_DOUBLE_EQ(*b.value(), 4.0);  // window [2, 4, 6]
  WindowedBaseline restored(3);
  restored.load_state(b.state());
  EXPECT_DOUBLE_EQ(*restored.value(), 4.0);
  expect_values(restored.advantages(T({0})), {-4}, 0);
  EXPECT_DOUBLE_EQ(*restored.value(), 10.0 / 3);
  EXPECT_THROW(WindowedBaseline(0), std::invalid_argument);
}

}  // namespace
}  // namespace aligntrain::objectives
