// kernels::token_logprobs and objectives::token_logprob_sum against their spec, log_softmax(hidden · Wᵀ) gathered at
// the labels and differentiated by autograd in fp64 over the whole vocabulary: values and the gradients of hidden and
// the LM-head weight, at a vocabulary of several thousand, for chunks of 1, 7 and 64 rows, one chunk holding every
// row (its block kept for the backward) and chunks sized by the logits budget in bytes — budgeted chunking gives the
// loss and LM-head gradient of one chunk. Run alone it checks the kernel; under `mpirun -np 2` the vocabulary is
// split in halves (row statistics all-reduced, the hidden gradient summed by copy_to_group) and the same holds.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "kernels/token_logprobs.h"
#include "test/util/mpi_test_main.h"
#include "trainer/model/projection.h"
#include "trainer/objectives/distill.h"
#include "trainer/parallel/mappings.h"
#include "trainer/parallel/vocab_parallel.h"
#include "trainer/runtime/communicators.h"

namespace aligntrain::kernels {
namespace {

runtime::Groups& groups() {
  static runtime::Groups g = runtime::make_groups(testing::world(), testing::world().size(), runtime::Device::kCpu);
  return g;
}

constexpr int64_t kN = 41, kV = 5000, kH = 24;

struct Spec {
  at::Tensor lp, grad_h, grad_w;  // fp64, full vocabulary
};

// Spec values and gradients of L = Σ_i c_i·lp_i (c fixed) in fp64.
Spec spec(const at::Tensor& h, const at::Tensor& w, const at::Tensor& labels, const at::Tensor& c) {
  const auto hd = h.to(at::kDouble).detach().requires_grad_(true), wd = w.to(at::kDouble).detach().requires_grad_(true);
  const auto valid = labels.ne(-100);
  const auto lp = at::log_softmax(at::mm(hd, wd.t()), 1)
                      .gather(1, at::where(valid, labels, at::zeros_like(labels)).unsqueeze(1))
                      .squeeze(1)
                      .masked_fill(valid.logical_not(), 0.0);
  (lp * c.to(at::kDouble)).sum().backward();
  return {lp.detach(), hd.grad(), wd.grad()};
}

class FakeHead : public model::LmHead {
 public:
  explicit FakeHead(at::Tensor w) : w_(std::move(w)) {}
  at::Tensor forward(const at::Tensor& hidden) override { return at::mm(hidden, w_.t()); }
  at::Tensor weight() const override { return w_; }

 private:
  at::Tensor w_;
};

class TokenLogprobs : public ::testing::Test {
 protected:
  runtime::Communicator& g = *groups().tp;
  const ShardReduce shards = parallel::shard_reduce(g);
  int64_t local = kV / g.size(), start = g.rank() * local;
  at::Tensor h, w, labels, c;

  void SetUp() override {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
    h = at::normal(0.0, 1.0, {kN, kH}, gen).to(at::kFloat);
    w = at::normal(0.0, 0.5, {kV, kH}, gen).to(at::kFloat);
    labels = at::randint(0, kV, {kN}, gen, at::kLong);
    labels.index_fill_(0, at::tensor({0, 5, 6, 40}, at::kLong), -100);  // rows without a label
    labels[3] = kV - 1;                                                  // the last rank's last column
    c = at::normal(0.0, 1.0, {kN}, gen).to(at::kFloat);
  }
  at::Tensor my_rows(const at::Tensor& full) const { return full.narrow(0, start, local); }
  // The kernel's (lp, grad_h, grad_w of this rank's rows) for L = Σ c·lp.
  Spec run(int64_t chunk) {
    const auto hl = h.clone().requires_grad_(true), wl = my_rows(w).clone().requires_grad_(true);
    const auto lp = token_logprobs(parallel::copy_to_group(hl, g), wl, labels, start, shards, chunk);
    (lp * c).sum().backward();
    return {lp.detach(), hl.grad(), wl.grad()};
  }
  void expect_near(const at::Tensor& got, const at::Tensor& want, double tol, const std::string& what) {
    const double scale = std::max(1.0, want.abs().max().item<double>());
    EXPECT_LE((got.to(at::kDouble) - want).abs().max().item<double>(), tol * scale) << what;
  }
};

TEST_F(TokenLogprobs, ValuesAndGradientsEqualTheSpecForEveryChunking) {
  const Spec want = spec(h, w, labels, c);
  for (int64_t chunk : {int64_t{1}, int64_t{7}, int64_t{64}, int64_t{0}}) {
    const std::string what = "chunk " + std::to_string(chunk);
    const Spec got = run(chunk);
    expect_near(got.lp, want.lp, 1e-5, what + ": log-probs");
    EXPECT_EQ(got.lp[0].item<float>(), 0.0f) << what << ": a row without a label is 0";
    expect_near(got.grad_h, want.grad_h, 1e-5, what + ": hidden gradient");
    expect_near(got.grad_w, my_rows(want.grad_w), 1e-5, what + ": LM-head gradient");
    EXPECT_EQ(got.grad_h[5].abs().sum().item<float>(), 0.0f) << what << ": no gradient for an unlabelled row";
  }
}

TEST_F(TokenLogprobs, BudgetedChunksGiveTheLossAndHeadGradientOfOneChunk) {
  const int64_t saved = logits_budget_bytes();
  const Spec one = run(kN);  // every labelled row in one chunk, its block kept
  set_logits_budget_bytes(5 * local * 4);  // five rows of logits
  EXPECT_EQ(logits_chunk_rows(local), 5);
  const Spec budgeted = run(0);
  set_logits_budget_bytes(saved);
  expect_near(budgeted.lp, one.lp.to(at::kDouble), 1e-6, "log-probs");
  expect_near(budgeted.grad_w, one.grad_w.to(at::kDouble), 1e-6, "LM-head gradient");
  expect_near(budgeted.grad_h, one.grad_h.to(at::kDouble), 1e-6, "hidden gradient");
  EXPECT_EQ(logits_chunk_rows(1 << 20, 1), 1) << "at least one row";
}

TEST_F(TokenLogprobs, WithoutGradientOnlyValues) {
  const Spec want = spec(h, w, labels, c);
  at::NoGradGuard no_grad;
  expect_near(token_logprobs(h, my_rows(w), labels, start, shards, 3), want.lp, 1e-5, "no-grad log-probs");
}

TEST_F(TokenLogprobs, SumWithTheGradientFormedInTheForwardEqualsTheSpec) {
  const Spec want = spec(h, w, labels, at::ones({kN}));
  for (int64_t chunk : {int64_t{4}, int64_t{0}}) {
    const auto hl = h.clone().requires_grad_(true), wl = my_rows(w).clone().requires_grad_(true);
    FakeHead head(wl);
    const auto total = objectives::token_logprob_sum(hl.view({1, kN, kH}), head, labels.view({1, kN}), g, chunk);
    (2.0 * total).backward();
    expect_near(total.detach().view({1}), want.lp.sum().view({1}), 1e-5, "sum");
    expect_near(hl.grad(), 2.0 * want.grad_h, 1e-5, "hidden gradient");
    expect_near(wl.grad(), 2.0 * my_rows(want.grad_w), 1e-5, "LM-head gradient");
  }
}

}  // namespace
}  // namespace aligntrain::kernels
