// Tensor parallelism equals one rank: under `mpirun -np 2` (TP=2) each rank builds the sharded model from the same
// checkpoint and a dense single-rank copy, and compares hidden states, token log-probs and every parameter's
// gradient (its slice of the dense gradient) within 1e-5 of the tensor's scale in fp32; vocab-parallel log-softmax,
// token log-probs, KL, JSD and top-k equal the unsharded computation within 1e-6 of their scale (gradients 1e-5;
// test/util/tolerance.h: sharded sums round differently, by an amount relative to the values). Run alone (world of
// one) the same checks hold trivially for TP=1, which exercises the code paths without MPI.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <functional>

#include <cstdio>
#include <filesystem>
#include <string>

#include "trainer/model/checkpoint_io.h"
#include "trainer/model/hf_names.h"
#include "trainer/model/logprobs.h"
#include "trainer/model/presets.h"
#include "trainer/parallel/data_parallel.h"
#include "trainer/parallel/layers.h"
#include "trainer/parallel/vocab_parallel.h"
#include "trainer/runtime/communicator_self.h"
#include "trainer/runtime/communicators.h"
#include "test/util/mpi_test_main.h"
#include "test/util/tolerance.h"

namespace aligntrain {
namespace {

runtime::Groups& groups() {
  static runtime::Groups g =
      runtime::make_groups(testing::world(), testing::world().size(), runtime::Device::kCpu);
  return g;
}

using aligntrain::testing::near_in_scale;

// This rank's slice of a full tensor, as hf_names.h's Split says.
at::Tensor slice(const at::Tensor& full, model::Split split, int64_t rank, int64_t tp) {
  if (split == model::Split::kReplicated || tp == 1) return full;
  const int64_t dim = split == model::Split::kRows ? 0 : 1;
  const int64_t n = full.size(dim) / tp;
  return full.narrow(dim, rank * n, n);
}

std::string scratch(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  const std::string file = name + "-rank" + std::to_string(testing::world().rank());
  return (std::filesystem::path(base ? base : "/tmp") / file).string();
}

class TensorParallel : public ::testing::TestWithParam<std::string> {};

TEST_P(TensorParallel, ShardedModelEqualsDenseModel) {
  auto& tp_group = *groups().tp;
  const int64_t tp = tp_group.size(), rank = tp_group.rank();
  model::ModelConfig config = model::preset_config(GetParam());
  config.vocab_size = 262;  // divisible by 2

  // The dense reference with non-trivial norms and biases, saved as a checkpoint each rank reads its slices from.
  auto dense_factory = model::dense_layer_factory();
  model::CausalLM dense(config, *dense_factory);
  model::init_weights(dense, 5, 0, 1);
  {
    at::NoGradGuard no_grad;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
    for (auto& p : dense.parameters()) p.add_(at::normal(0.0, 0.05, p.sizes(), gen));
  }
  const std::string dir = scratch("tp_" + GetParam());
  model::save_hf_model(dir, config, dense.parameter_set().named_tensors(), "");

  auto tp_factory = parallel::tensor_parallel_layer_factory(tp_group);
  model::CausalLM sharded(config, *tp_factory);
  model::load_hf_weights(sharded, dir, rank, tp);

  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const auto ids = at::randint(0, config.vocab_size, {2, 16}, gen);
  auto mask = at::ones({2, 16}, at::kLong);
  mask[1].narrow(0, 12, 4).fill_(0);
  const auto labels = model::shift_labels(ids, mask);

  const auto h_dense = dense.hidden_states({ids, mask});
  const auto h_tp = sharded.hidden_states({ids, mask});
  EXPECT_TRUE(near_in_scale(h_tp, h_dense, 1e-5));
  const auto lp_dense = model::token_logprobs(dense, h_dense, labels, 5);
  const auto lp_tp = parallel::token_logprobs(sharded, h_tp, labels, tp_group, 5);
  EXPECT_TRUE(near_in_scale(lp_tp, lp_dense, 1e-5));
  lp_dense.sum().backward();
  lp_tp.sum().backward();

  runtime::SelfCommunicator one;
  const double norm_dense = parallel::global_grad_norm(parallel::norm_params(dense.parameter_set()), one);
  EXPECT_TRUE(near_in_scale(parallel::global_grad_norm(parallel::norm_params(sharded.parameter_set()), tp_group), norm_dense, 1e-5));

  auto dense_params = dense.named_parameters(true);
  auto tp_params = sharded.named_parameters(true);
  for (const auto& spec : model::hf_tensor_table(config)) {
    const auto want = slice(dense_params[spec.name].grad(), spec.split, rank, tp);
    const auto& got = tp_params[spec.name].grad();
    ASSERT_TRUE(got.defined()) << spec.name;
    ASSERT_EQ(got.sizes(), want.sizes()) << spec.name;
    EXPECT_TRUE(near_in_scale(got, want, 1e-5)) << spec.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Presets, TensorParallel, ::testing::Values("tiny-llama", "tiny-qwen2", "tiny-qwen3"));

TEST(VocabParallel, MatchesUnshardedComputation) {
  auto& g = *groups().tp;
  runtime::SelfCommunicator one;
  const int64_t v = 24, n = 7, local = v / g.size();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
  const auto p = at::normal(0.0, 2.0, {n, v}, gen), q = at::normal(0.0, 2.0, {n, v}, gen);
  // KL and JSD can be much smaller than the log-probs they are computed from; their rounding is the log-probs'.
  const double kLogits = aligntrain::testing::max_abs(at::log_softmax(at::cat({p, q}), -1));
  const auto mine = [&](const at::Tensor& full) { return full.narrow(1, g.rank() * local, local); };
  auto labels = at::randint(0, v, {n}, gen);
  labels[2] = model::kIgnoreIndex;

  EXPECT_TRUE(near_in_scale(parallel::log_softmax(mine(p), g), mine(at::log_softmax(p, -1)), 1e-6));
  EXPECT_TRUE(
      near_in_scale(parallel::token_logprobs(mine(p), labels, g), parallel::token_logprobs(p, labels, one), 1e-6));
  EXPECT_EQ(parallel::token_logprobs(mine(p), labels, g)[2].item<float>(), 0.0f);
  EXPECT_TRUE(near_in_scale(parallel::forward_kl(mine(p), mine(q), g), parallel::forward_kl(p, q, one), 1e-6, kLogits));
  EXPECT_TRUE(near_in_scale(parallel::reverse_kl(mine(p), mine(q), g), parallel::reverse_kl(p, q, one), 1e-6, kLogits));
  EXPECT_TRUE(near_in_scale(parallel::jsd(mine(p), mine(q), 0.5, g), parallel::jsd(p, q, 0.5, one), 1e-6, kLogits));
  const auto top = parallel::top_k(mine(p), 5, g);
  const auto [want_v, want_i] = p.topk(5, -1);
  EXPECT_TRUE(top.values.equal(want_v));  // the same logits, selected
  EXPECT_TRUE(top.indices.equal(want_i));

  // Gradients with respect to this rank's student logits equal the matching columns of the unsharded gradient.
  auto grad_of = [&](const std::function<at::Tensor(const at::Tensor&, runtime::Communicator&)>& f, const at::Tensor& x,
                     runtime::Communicator& group) {
    auto leaf = x.clone().requires_grad_(true);
    (f(leaf, group) * at::arange(1, n + 1, at::kFloat)).sum().backward();
    return leaf.grad();
  };
  using Fn = std::function<at::Tensor(const at::Tensor&, runtime::Communicator&)>;
  for (const Fn& f : {Fn([&](const at::Tensor& x, runtime::Communicator& c) {
                        return parallel::forward_kl(c.size() == 1 ? p : mine(p), x, c);
                      }),
                      Fn([&](const at::Tensor& x, runtime::Communicator& c) {
                        return parallel::reverse_kl(c.size() == 1 ? p : mine(p), x, c);
                      }),
                      Fn([&](const at::Tensor& x, runtime::Communicator& c) {
                        return parallel::jsd(c.size() == 1 ? p : mine(p), x, 0.3, c);
                      }),
                      Fn([&](const at::Tensor& x, runtime::Communicator& c) {
                        return parallel::log_softmax(x, c).select(1, 0) * (c.rank() == 0 ? 1.0 : 0.0);
                      })}) {
    EXPECT_TRUE(near_in_scale(grad_of(f, mine(q), g), mine(grad_of(f, q, one)), 1e-5));
  }

  // The unsharded reference against the formula: KL(p‖q) = Σ p (log p − log q).
  const auto lp = at::log_softmax(p, -1), lq = at::log_softmax(q, -1);
  EXPECT_TRUE(near_in_scale(parallel::forward_kl(p, q, one), (lp.exp() * (lp - lq)).sum(-1), 1e-6, kLogits));
}

TEST(VocabParallel, ToyNumbersFromMethods) {
  // METHODS.md D.1: student z=[2,1,0,−1], teacher z=[0.5,2,0.3,−1].
  runtime::SelfCommunicator one;
  const auto s = at::tensor({2.0, 1.0, 0.0, -1.0}).view({1, 4}), t = at::tensor({0.5, 2.0, 0.3, -1.0}).view({1, 4});
  EXPECT_NEAR(parallel::forward_kl(t, s, one).item<double>(), 0.559488, 1e-6);
  EXPECT_NEAR(parallel::reverse_kl(t, s, one).item<double>(), 0.638074, 1e-6);
  EXPECT_NEAR(parallel::jsd(t, s, 0.5, one).item<double>(), 0.140154, 1e-6);
  EXPECT_NEAR(parallel::jsd(t, s, 0.1, one).item<double>(), 0.049918, 1e-6);
}

}  // namespace
}  // namespace aligntrain
