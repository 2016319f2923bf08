// kernels::kd_divergence_rows against its spec, objectives::kd_divergence on the full vocabulary differentiated by
// autograd: the per-position values and ∂(Σ w·D)/∂student for every divergence, temperatures 1 and 2, several row
// blocks, fp32 and fp64: within 1e-6 (fp32) or 1e-12 (fp64) of the spec in fp64, relative to the scale, or no further
// from it than three times the spec's own error in that dtype (peaked fp32 logits). Run alone (a world of one) it
// checks the kernel itself; under `mpirun -np 2` the vocabulary is split in halves (the row statistics are
// all-reduced) and the same checks hold.
// Also: objectives::chunked_token_loss with the kernel as a self-differentiating term equals the autograd term, and
// bad arguments are refused.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "kernels/kd_divergence.h"
#include "test/util/mpi_test_main.h"
#include "trainer/objectives/distill.h"
#include "trainer/parallel/vocab_parallel.h"
#include "trainer/runtime/communicator_self.h"
#include "trainer/runtime/communicators.h"

namespace aligntrain::kernels {
namespace {

runtime::Groups& groups() {
  static runtime::Groups g = runtime::make_groups(testing::world(), testing::world().size(), runtime::Device::kCpu);
  return g;
}

double max_error(const at::Tensor& a, const at::Tensor& b) {
  return (a.detach().to(at::kDouble) - b.detach().to(at::kDouble)).abs().max().item<double>();
}

// max |a − b| ≤ tol·max(1, max |b|).
void expect_close(const at::Tensor& a, const at::Tensor& b, double tol, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double scale = std::max(1.0, b.detach().to(at::kDouble).abs().max().item<double>());
  EXPECT_LE(max_error(a, b), tol * scale) << what << " (scale " << scale << ")";
}

// The kernel's result `got` is as accurate as the spec's `spec` in the same dtype, both measured against the spec
// in fp64 (`truth`): within tol·scale of it, or at most three times the spec's own rounding error (peaked fp32 logits).
void expect_as_accurate(const at::Tensor& got, const at::Tensor& spec, const at::Tensor& truth, double tol,
                        const std::string& what) {
  ASSERT_EQ(got.sizes(), truth.sizes()) << what;
  const double scale = std::max(1.0, truth.abs().max().item<double>());
  const double spec_error = max_error(spec, truth);
  EXPECT_LE(max_error(got, truth), std::max(tol * scale, 3.0 * spec_error))
      << what << " (scale " << scale << ", the spec's own error " << spec_error << ")";
}

struct Case {
  Divergence divergence;
  double beta;
  const char* name;
};
const std::vector<Case> kCases = {{Divergence::forward_kl, 0.0, "FKL"}, {Divergence::reverse_kl, 0.0, "RKL"},
                                  {Divergence::jsd, 0.3, "JSD(0.3)"},   {Divergence::jsd, 0.0, "JSD(0)"},
                                  {Divergence::jsd, 1.0, "JSD(1)"},     {Divergence::tvd, 0.0, "TVD"}};

class KdDivergenceRows : public ::testing::TestWithParam<at::ScalarType> {
 protected:
  static constexpr int64_t kN = 7, kV = 16, kH = 5;
  runtime::Communicator& g = *groups().tp;
  const ShardReduce shards = parallel::shard_reduce(g);
  runtime::SelfCommunicator one;
  at::ScalarType dtype = GetParam();
  double tol = dtype == at::kDouble ? 1e-12 : 1e-6;
  int64_t local = kV / g.size();

  // A copy: the kernel writes its gradient over the student logits it is given.
  at::Tensor mine(const at::Tensor& full) const {
    return full.narrow(-1, g.rank() * local, local).clone(at::MemoryFormat::Contiguous);
  }
  at::Tensor normal(std::vector<int64_t> shape, double std, uint64_t seed) const {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return at::normal(0.0, std, shape, gen).to(dtype);
  }
};

TEST_P(KdDivergenceRows, EqualsAutogradOfTheFormulas) {
  const auto w = normal({kN}, 1.0, 3);  // signed weights: the gradient must be linear in them
  for (double scale : {1.0, 8.0}) {     // 8: peaked distributions, p and q near 0 in most columns
    const auto t = normal({kN, kV}, scale, 1), s = normal({kN, kV}, scale, 2);
    for (const auto& c : kCases) {
      for (double temperature : {1.0, 2.0}) {
        const auto full = s.clone().requires_grad_(true);
        const auto want = objectives::kd_divergence(t, full, c.divergence, c.beta, temperature, one);
        (want * w).sum().backward();
        const auto full64 = s.to(at::kDouble, /*non_blocking=*/false, /*copy=*/true).requires_grad_(true);
        const auto truth = objectives::kd_divergence(t.to(at::kDouble), full64, c.divergence, c.beta, temperature, one);
        (truth * w.to(at::kDouble)).sum().backward();
        for (int64_t block : {int64_t{1}, int64_t{3}, kN, int64_t{0}}) {
          const std::string what = std::string(c.name) + " T=" + std::to_string(temperature) + " scale " +
                                   std::to_string(scale) + " block " + std::to_string(block);
          auto logits = mine(s);
          const auto value = kd_divergence_rows(mine(t), logits, w, c.divergence, c.beta, temperature, shards, block);
          expect_as_accurate(value, want, truth, tol, what + " value");
          expect_as_accurate(logits, mine(full.grad()), mine(full64.grad()), tol, what + " gradient");
          EXPECT_EQ(value.scalar_type(), dtype) << what;
          // Without weights: the same values, the logits untouched.
          auto untouched = mine(s);
          const auto plain = kd_divergence_rows(mine(t), untouched, {}, c.divergence, c.beta, temperature, shards, block);
          EXPECT_TRUE(plain.equal(value)) << what;
          EXPECT_TRUE(untouched.equal(mine(s))) << what;
        }
      }
    }
  }
}

TEST_P(KdDivergenceRows, ZeroForEqualDistributions) {
  const auto t = normal({kN, kV}, 1.0, 4);
  for (const auto& c : kCases) {
    auto logits = mine(t + 3.0);  // a constant shift is the same distribution
    const auto value = kd_divergence_rows(mine(t), logits, at::ones({kN}, t.options()), c.divergence, c.beta, 1.0, shards);
    EXPECT_LE(value.abs().max().item<double>(), tol) << c.name;
    // TVD's |p − q| has a kink at p = q: rounding picks a side, so its (sub)gradient is not 0 there.
    if (c.divergence != Divergence::tvd) EXPECT_LE(logits.abs().max().item<double>(), tol) << c.name;
  }
}

// The chunked distillation loss with the kernel writing its own gradient equals the loss with the spec as an autograd
// term: value, gradient of the hidden states, gradient of this rank's LM-head rows.
TEST_P(KdDivergenceRows, ChunkedTokenLossWithTheKernelEqualsAutograd) {
  const auto hidden = normal({kN, kH}, 1.0, 5), w = normal({kV, kH}, 0.7, 6);
  const auto teacher_hidden = normal({kN, kH}, 1.0, 7), tw = normal({kV, kH}, 0.7, 8);
  const auto weights = normal({kN}, 1.0, 9).abs() / kN;
  const auto rows = [&](const at::Tensor& full) { return full.narrow(0, g.rank() * local, local); };
  const auto teacher_logits = [&](const at::Tensor& t_rows, int64_t start, int64_t n) {
    return at::matmul(teacher_hidden.narrow(0, start, n), t_rows.t());
  };
  for (const auto& c : kCases) {
    const objectives::ChunkTerm spec = [&](const at::Tensor& logits, int64_t start, int64_t n) {
      return objectives::kd_divergence(teacher_logits(tw, start, n), logits, c.divergence, c.beta, 2.0, one);
    };
    const objectives::ChunkGradTerm fused = [&](at::Tensor& logits, const at::Tensor& f, int64_t start, int64_t n) {
      return kd_divergence_rows(teacher_logits(rows(tw), start, n), logits, f, c.divergence, c.beta, 2.0, shards);
    };
    const auto h1 = hidden.clone().requires_grad_(true), w1 = w.clone().requires_grad_(true);
    const auto want = objectives::chunked_token_loss(h1, w1, weights, spec, one, 3);
    (2.5 * want).backward();
    for (int64_t chunk : {int64_t{1}, int64_t{3}, int64_t{0}}) {
      const std::string what = std::string(c.name) + " chunk " + std::to_string(chunk);
      const auto h2 = hidden.clone().requires_grad_(true), w2 = rows(w).clone().requires_grad_(true);
      const auto got = objectives::chunked_token_loss(h2, w2, weights, fused, g, chunk);
      (2.5 * got).backward();
      expect_close(got, want, tol, what + " loss");
      expect_close(h2.grad(), h1.grad(), tol, what + " grad hidden");
      expect_close(w2.grad(), rows(w1.grad()), tol, what + " grad W rows");
    }
  }
}

TEST_P(KdDivergenceRows, RefusesBadArguments) {
  const auto t = mine(normal({kN, kV}, 1.0, 1));
  auto s = mine(normal({kN, kV}, 1.0, 2));
  const auto w = at::ones({kN}, t.options());
  auto narrow = s.narrow(1, 0, 1).contiguous();
  EXPECT_THROW(kd_divergence_rows(t, narrow, w, Divergence::forward_kl, 0, 1, shards), std::invalid_argument);
  EXPECT_THROW(kd_divergence_rows(t, s, w, Divergence::forward_kl, 0, 0.0, shards), std::invalid_argument);
  EXPECT_THROW(kd_divergence_rows(t, s, w, Divergence::jsd, 1.5, 1, shards), std::invalid_argument);
  EXPECT_THROW(kd_divergence_rows(t, s, w.narrow(0, 0, 2), Divergence::tvd, 0, 1, shards), std::invalid_argument);
  auto strided = normal({local, kN}, 1.0, 3).t();
  EXPECT_THROW(kd_divergence_rows(t, strided, w, Divergence::tvd, 0, 1, shards), std::invalid_argument);
  auto half = s.to(at::kBFloat16);
  EXPECT_THROW(kd_divergence_rows(t, half, w, Divergence::tvd, 0, 1, shards), std::invalid_argument);
  // Without a gradient a bf16 student is fine (computed in fp32).
  EXPECT_EQ(kd_divergence_rows(t, half, {}, Divergence::tvd, 0, 1, shards).scalar_type(), at::kFloat);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, KdDivergenceRows, ::testing::Values(at::kFloat, at::kDouble),
                         [](const auto& info) { return std::string(c10::toString(info.param)); });

}  // namespace
}  // namespace aligntrain::kernels
