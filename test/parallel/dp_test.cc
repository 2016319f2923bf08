// Data parallelism equals one rank: under `mpirun -np 2` each rank takes half of a global batch, averages gradients
// with bucketed all-reduces, clips the global norm and takes one AdamW step; against one rank doing the same on the
// whole batch. Two fp32 sums (two halves vs the whole) differ in their last bits, by an amount that depends on the
// CPU's BLAS code path, so the gradients and their norm are compared relative to their scale, and the weights after
// the step within what Adam's update makes of the gradients' difference (below). Alone (world of one) the same code
// runs with a group of one.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "trainer/model/checkpoint_io.h"
#include "trainer/model/logprobs.h"
#include "trainer/model/presets.h"
#include "trainer/parallel/data_parallel.h"
#include "trainer/runtime/communicator_self.h"
#include "trainer/runtime/communicators.h"
#include "test/util/mpi_test_main.h"
#include "test/util/tolerance.h"

namespace aligntrain {
namespace {

// -Σ log p(response tokens) / (tokens in the global batch): the global-batch token mean, as each rank's share.
at::Tensor loss_on(model::CausalLM& m, const at::Tensor& ids, const at::Tensor& mask, double global_tokens) {
  const auto labels = model::shift_labels(ids, mask);
  return -model::token_logprobs(m, m.hidden_states({ids, mask}), labels).sum() / global_tokens;
}

constexpr double kLr = 1e-3, kEps = 1e-8;

struct Replica {
  model::CausalLM model;
  std::map<std::string, at::Tensor> averaged;  // the gradients after averaging, before clipping
  double norm = 0;                             // the global gradient norm before clipping
};

// Averages over `dp`, clips to norm 0.5, takes one AdamW step (weight decay 0.1).
void step(Replica& r, runtime::Communicator& dp, int64_t bucket_bytes) {
  runtime::SelfCommunicator one;  // tp = 1
  parallel::GradientAverager(r.model.parameters(), dp, bucket_bytes).average();
  for (const auto& [name, p] : r.model.named_parameters(true).pairs()) r.averaged[name] = p.grad().clone();
  r.norm = parallel::clip_grad_norm(parallel::norm_params(r.model.parameter_set()), one, 0.5);
  torch::optim::AdamW opt(r.model.parameters(), torch::optim::AdamWOptions(kLr).eps(kEps).weight_decay(0.1));
  opt.step();
}

class DataParallel : public ::testing::TestWithParam<int64_t> {};

TEST_P(DataParallel, OneStepEqualsOneRankOnTheWholeBatch) {
  using aligntrain::testing::max_abs;
  using aligntrain::testing::near_in_scale;
  auto groups = runtime::make_groups(testing::world(), 1, runtime::Device::kCpu);
  auto& dp = *groups.dp;
  const model::ModelConfig config = model::preset_config("tiny-qwen2");
  auto factory = model::dense_layer_factory();
  Replica ddp{model::CausalLM(config, *factory)}, ref{model::CausalLM(config, *factory)};
  model::init_weights(ddp.model, 3, 0, 1);
  model::init_weights(ref.model, 3, 0, 1);

  const int64_t per_rank = 2, global = per_rank * dp.size();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(21);
  const auto ids = at::randint(0, config.vocab_size, {global, 12}, gen);
  auto mask = at::ones({global, 12}, at::kLong);
  mask.narrow(1, 0, 4).fill_(0);  // a 4-token prompt carries no loss
  mask[global - 1].narrow(0, 9, 3).fill_(0);
  const double tokens = model::shift_labels(ids, mask).ne(model::kIgnoreIndex).sum().item<double>();

  const auto mine = [&](const at::Tensor& t) { return t.narrow(0, dp.rank() * per_rank, per_rank); };
  (loss_on(ddp.model, mine(ids), mine(mask), tokens) * dp.size()).backward();
  step(ddp, dp, GetParam());

  runtime::SelfCommunicator one;
  loss_on(ref.model, ids, mask, tokens).backward();
  step(ref, one, GetParam());

  // The averaged gradients (before clipping, so that a wrong scale shows) and the global norm: fp32 sums of the
  // same terms in another order, within 1e-5 of each tensor's largest gradient.
  EXPECT_TRUE(near_in_scale(ddp.norm, ref.norm, 1e-5)) << "gradient norm";
  for (const auto& [name, want] : ref.averaged) {
    EXPECT_TRUE(near_in_scale(ddp.averaged.at(name), want, 1e-5)) << name;
  }

  // Adam's first update is lr·f(g) with f(g) = g/(|g| + ε), about lr·sign(g). f magnifies a difference in g by up
  // to 1/(min |g| + ε): where a gradient is within rounding of zero the two sums can round it to different signs
  // (1.6e-6 = 1.6e-3·lr on an Intel host). So each weight may differ by what Adam passes of its gradient's
  // difference, lr·|g₁ − g₂|/(min(|g₁|, |g₂|) + ε), plus the rounding of w·(1 − lr·wd) − lr·f(g): 1e-6 of the scale
  // max(|w|, lr). Where a gradient is resolved (nearly every element) that is a few units in the last place of w;
  // it is never more than Adam's range, 2·lr.
  auto got = ddp.model.named_parameters(true);
  for (const auto& [name, want] : ref.model.named_parameters(true).pairs()) {
    const auto& g1 = got[name].grad();  // clipped (what Adam saw)
    const auto& g2 = want.grad();
    EXPECT_TRUE(near_in_scale(g1, g2, 1e-5)) << name << " clipped gradient";
    const auto passed = (kLr * (g1 - g2).abs() / (at::minimum(g1.abs(), g2.abs()) + kEps)).clamp_max(2 * kLr);
    const auto allowed = passed + 1e-6 * std::max(max_abs(want), kLr);
    const auto excess = (got[name] - want).abs() - allowed;
    EXPECT_LE(excess.max().item<double>(), 0.0) << name << ": the weights differ by more than the gradients explain";
  }
}

// A small bucket (several all-reduces per step) and one large enough for the whole model.
INSTANTIATE_TEST_SUITE_P(Buckets, DataParallel, ::testing::Values(4096, 64 << 20));

TEST(DataParallel, BucketsHoldOneDtypeAndRespectTheSize) {
  runtime::SelfCommunicator one;
  std::vector<at::Tensor> params = {at::zeros({256}), at::zeros({256}), at::zeros({256}, at::kDouble), at::zeros({10})};
  EXPECT_EQ(parallel::GradientAverager(params, one, 2048).num_buckets(), 3);  // [f32 f32] [f64] [f32]
  EXPECT_EQ(parallel::GradientAverager(params, one, 1024).num_buckets(), 4);
}

// Clipping computes its factor on the device (no host read); the gradients and the norm are bitwise those of the
// host formula it replaced: norm = √(Σ sharded + Σ replicated) in fp64, factor = max_norm / (norm + 1e-6), and
// the gradients multiplied by it (a host scalar, so for bf16 gradients the factor rounded to bf16) only where it is
// below 1. fp32 and bf16 gradients; clipping and not.
TEST(DataParallel, ClippingOnTheDeviceIsTheHostFormulaBitwise) {
  runtime::SelfCommunicator one;
  for (const auto dtype : {at::kFloat, at::kBFloat16}) {
    for (const double max_norm : {0.5, 1e6}) {
      auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
      std::vector<parallel::NormParam> ours, host;
      for (const auto& shape : {std::vector<int64_t>{7, 5}, std::vector<int64_t>{33}, std::vector<int64_t>{4, 4}}) {
        const auto w = at::randn(shape, gen).to(dtype), g = (at::randn(shape, gen) * 3).to(dtype);
        ours.push_back({w.clone().requires_grad_(), shape.size() == 1});
        host.push_back({w.clone().requires_grad_(), shape.size() == 1});
        ours.back().param.mutable_grad() = g.clone();
        host.back().param.mutable_grad() = g.clone();
      }
      at::Tensor sharded = at::zeros({1}, at::kDouble), replicated = at::zeros({1}, at::kDouble);
      for (const auto& p : host) {
        auto sq = at::zeros({1}, at::kDouble);
        sq.add_(p.param.grad().reshape({-1}).to(at::kDouble).pow(2).sum());
        (p.sharded ? sharded : replicated).add_(sq);
      }
      const double norm = std::sqrt((sharded + replicated).item<double>());
      const double factor = max_norm / (norm + 1e-6);
      if (factor < 1.0) {
        for (const auto& p : host) p.param.mutable_grad().mul_(factor);
      }
      EXPECT_EQ(parallel::clip_grad_norm(ours, one, max_norm), norm);
      for (size_t i = 0; i < ours.size(); ++i) {
        EXPECT_TRUE(at::equal(ours[i].param.grad(), host[i].param.grad()))
            << at::toString(dtype) << " max_norm " << max_norm << " tensor " << i;
      }
      if (max_norm < 1) {
        EXPECT_LT(factor, 1.0);  // the clipping case does clip
      }
    }
  }
}

}  // namespace
}  // namespace aligntrain
