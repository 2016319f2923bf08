// Data parallelism equals one rank: under `mpirun -np 2` each rank takes half of a global batch, averages gradients
// with bucketed all-reduces, clips the global norm and takes one AdamW step; the weights equal those of one rank
// stepping on the whole batch within 1e-6. Alone (world of one) the same code runs with a group of one.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/optim/adamw.h>

#include "trainer/model/checkpoint_io.h"
#include "trainer/model/logprobs.h"
#include "trainer/model/presets.h"
#include "trainer/parallel/data_parallel.h"
#include "trainer/runtime/communicator_self.h"
#include "trainer/runtime/communicators.h"
#include "test/util/mpi_test_main.h"

namespace aligntrain {
namespace {

// -Σ log p(response tokens) / (tokens in the global batch): the global-batch token mean, as each rank's share.
at::Tensor loss_on(model::CausalLM& m, const at::Tensor& ids, const at::Tensor& mask, double global_tokens) {
  const auto labels = model::shift_labels(ids, mask);
  return -model::token_logprobs(m, m.hidden_states({ids, mask}), labels).sum() / global_tokens;
}

void step(model::CausalLM& m, runtime::Communicator& dp, int64_t bucket_bytes) {
  runtime::SelfCommunicator one;  // tp = 1
  parallel::GradientAverager(m.parameters(), dp, bucket_bytes).average();
  parallel::clip_grad_norm(parallel::norm_params(m.parameter_set()), one, 0.5);
  // Adam's first step is about lr·sign(g): for gradients near zero the fp32 rounding of two partial sums versus
  // one full sum shows up as lr·O(1e-4); lr 1e-3 keeps that below the 1e-6 tolerance.
  torch::optim::AdamW opt(m.parameters(), torch::optim::AdamWOptions(1e-3).weight_decay(0.1));
  opt.step();
}

class DataParallel : public ::testing::TestWithParam<int64_t> {};

TEST_P(DataParallel, OneStepEqualsOneRankOnTheWholeBatch) {
  auto groups = runtime::make_groups(testing::world(), 1, runtime::Device::kCpu);
  auto& dp = *groups.dp;
  const model::ModelConfig config = model::preset_config("tiny-qwen2");
  auto factory = model::dense_layer_factory();
  model::CausalLM ddp(config, *factory), ref(config, *factory);
  model::init_weights(ddp, 3, 0, 1);
  model::init_weights(ref, 3, 0, 1);

  const int64_t per_rank = 2, global = per_rank * dp.size();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(21);
  const auto ids = at::randint(0, config.vocab_size, {global, 12}, gen);
  auto mask = at::ones({global, 12}, at::kLong);
  mask.narrow(1, 0, 4).fill_(0);  // a 4-token prompt carries no loss
  mask[global - 1].narrow(0, 9, 3).fill_(0);
  const double tokens = model::shift_labels(ids, mask).ne(model::kIgnoreIndex).sum().item<double>();

  const auto mine = [&](const at::Tensor& t) { return t.narrow(0, dp.rank() * per_rank, per_rank); };
  (loss_on(ddp, mine(ids), mine(mask), tokens) * dp.size()).backward();
  step(ddp, dp, GetParam());

  runtime::SelfCommunicator one;
  loss_on(ref, ids, mask, tokens).backward();
  step(ref, one, GetParam());

  auto got = ddp.named_parameters(true);
  for (const auto& [name, want] : ref.named_parameters(true).pairs()) {
    EXPECT_LE((got[name] - want).abs().max().item<double>(), 1e-6) << name;
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

}  // namespace
}  // namespace aligntrain
