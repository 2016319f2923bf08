// Data-parallel averaging overlapped with the backward pass (trainer/parallel/overlapped_averager.h) against the
// reference path (GradientAverager after the backward), under `mpirun -np 2`: two identical replicas train three steps,
// each of two micro-batches per rank (gradient accumulation: only the last backward is armed), with the SFT loss whose
// LM-head weight gradient goes into .grad during the forward, a parameter that never gets a gradient, global-norm
// clipping and AdamW (plain, or ZeRO-1 over the data-parallel group). The averaged gradients of every step and the
// weights after the last are bitwise the same, and every bucket that could be launched during the backward was.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "test/util/mpi_test_main.h"
#include "trainer/model/checkpoint_io.h"
#include "trainer/model/logprobs.h"
#include "trainer/model/presets.h"
#include "trainer/objectives/distill.h"
#include "trainer/optim/adamw.h"
#include "trainer/parallel/data_parallel.h"
#include "trainer/parallel/overlapped_averager.h"
#include "trainer/runtime/communicator_self.h"
#include "trainer/runtime/communicators.h"

namespace aligntrain {
namespace {

constexpr int kSteps = 3, kRowsPerRank = 4, kMicro = 2, kLength = 12;

struct Replica {
  std::unique_ptr<model::LayerFactory> factory = model::dense_layer_factory();
  model::CausalLM model;
  at::Tensor unused = at::zeros({64}).requires_grad_();  // in no graph: never gets a gradient from autograd
  std::vector<at::Tensor> params;
  std::vector<optim::ParamGroupEntry> entries;
  std::vector<std::vector<at::Tensor>> averaged;  // per step, per parameter

  explicit Replica(const model::ModelConfig& config) : model(config, *factory) {
    model::init_weights(model, 3, 0, 1);
    // The unused parameter first: its bucket is the last to be launched, so every other bucket can go during the
    // backward pass.
    params.push_back(unused);
    entries.push_back({"unused", unused, false});
    for (const auto& [name, p] : model.named_parameters(true).pairs()) {
      params.push_back(p);
      entries.push_back({name, p, p.dim() > 1});
    }
  }
};

// Trains kSteps steps; `overlapped` (if set) averages instead of GradientAverager.
void train(Replica& r, runtime::Communicator& dp, int64_t bucket_bytes, bool zero1,
           parallel::OverlappedAverager* overlapped, int64_t vocab) {
  runtime::SelfCommunicator one;  // tp = 1
  parallel::GradientAverager reference(r.params, dp, bucket_bytes);
  optim::AdamWOptions options;
  options.weight_decay = 0.1;
  optim::AdamW optimizer(r.entries, options, zero1 ? &dp : nullptr);
  std::vector<parallel::NormParam> norm;
  for (const auto& p : r.params) norm.push_back({p, false});

  for (int step = 0; step < kSteps; ++step) {
    const int64_t global = kRowsPerRank * dp.size();
    auto gen = at::make_generator<at::CPUGeneratorImpl>(100 + step);
    const auto ids = at::randint(0, vocab, {global, kLength}, gen);
    auto mask = at::ones({global, kLength}, at::kLong);
    mask.narrow(1, 0, 3).fill_(0);  // a 3-token prompt
    const auto labels = model::shift_labels(ids, mask);
    const double tokens = labels.ne(model::kIgnoreIndex).sum().item<double>();
    const double scale = -static_cast<double>(dp.size()) / tokens;  // as SftObjective

    for (auto& p : r.params) p.mutable_grad() = at::Tensor();
    for (int m = 0; m < kRowsPerRank / kMicro; ++m) {
      if (overlapped && m + 1 == kRowsPerRank / kMicro) overlapped->arm();
      const int64_t first = dp.rank() * kRowsPerRank + m * kMicro;
      const model::ForwardInput in{ids.narrow(0, first, kMicro), mask.narrow(0, first, kMicro)};
      const auto hidden = r.model.hidden_states(in);
      objectives::token_logprob_sum(hidden, *r.model.lm_head, labels.narrow(0, first, kMicro), one, 0, scale)
          .backward();
    }
    for (auto& p : r.params)
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);  // as the training loop does
    if (overlapped) {
      overlapped->finish();
    } else {
      reference.average();
    }
    r.averaged.emplace_back();
    for (const auto& p : r.params) r.averaged.back().push_back(p.grad().clone());
    parallel::clip_grad_norm_tensor(norm, one, 0.5);
    optimizer.step(1e-3);
  }
}

class OverlappedAveraging : public ::testing::TestWithParam<std::tuple<int64_t, bool>> {};

TEST_P(OverlappedAveraging, BitwiseTheSameAsAveragingAfterTheBackward) {
  const auto [bucket_bytes, zero1] = GetParam();
  auto groups = runtime::make_groups(testing::world(), 1, runtime::Device::kCpu);
  auto& dp = *groups.dp;
  ASSERT_EQ(dp.size(), 2) << "run under mpirun -np 2";
  const model::ModelConfig config = model::preset_config("tiny-qwen2");
  Replica ref(config), ovl(config);

  train(ref, dp, bucket_bytes, zero1, nullptr, config.vocab_size);
  parallel::OverlappedAverager overlapped(ovl.params, dp, bucket_bytes);
  train(ovl, dp, bucket_bytes, zero1, &overlapped, config.vocab_size);

  for (int step = 0; step < kSteps; ++step) {
    for (size_t i = 0; i < ref.params.size(); ++i) {
      EXPECT_TRUE(at::equal(ovl.averaged[step][i], ref.averaged[step][i]))
          << ref.entries[i].name << ": averaged gradient differs at step " << step + 1;
    }
  }
  for (size_t i = 0; i < ref.params.size(); ++i) {
    EXPECT_TRUE(at::equal(ovl.params[i], ref.params[i])) << ref.entries[i].name << ": weights differ";
  }
  // Gradients did flow (the comparison above is not between zeros), and the unused parameter stayed zero.
  EXPECT_GT(ref.averaged[0][1].abs().sum().item<double>(), 0.0) << "no gradient reached the first weight";
  EXPECT_TRUE(at::equal(ovl.params[0], at::zeros({64})));
  // Every bucket but the unused parameter's (launched last, by finish) went out during the backward pass; with one
  // bucket for the whole model none could.
  EXPECT_EQ(overlapped.timing().buckets_in_backward, (overlapped.num_buckets() - 1) * kSteps);
  EXPECT_EQ(overlapped.timing().steps, kSteps);
  if (bucket_bytes == 4096) {
    EXPECT_GT(overlapped.num_buckets(), 10);
  }
}

// Many small buckets (a bucket per tensor or two) and one bucket for everything; without and with ZeRO-1.
INSTANTIATE_TEST_SUITE_P(Buckets, OverlappedAveraging,
                         ::testing::Combine(::testing::Values(int64_t{4096}, int64_t{64} << 20),
                                            ::testing::Bool()));

// A second backward into an armed gradient is refused: its bucket may already be on its way.
TEST(OverlappedAveraging, ASecondBackwardAfterArmingThrows) {
  auto groups = runtime::make_groups(testing::world(), 1, runtime::Device::kCpu);
  auto& dp = *groups.dp;
  ASSERT_EQ(dp.size(), 2) << "run under mpirun -np 2";
  auto w = at::ones({8}).requires_grad_();
  parallel::OverlappedAverager overlapped({w}, dp, 1 << 20);
  overlapped.arm();
  // The only bucket is launched from the hook (collective: both ranks do it); on the CPU it is averaged right there.
  (w * 2 * (dp.rank() + 1)).sum().backward();
  EXPECT_TRUE(at::equal(w.grad(), at::full({8}, 3.0)));  // (2 + 4) / 2
  EXPECT_THROW((w * 3).sum().backward(), std::exception);
  overlapped.finish();
}

}  // namespace
}  // namespace aligntrain
