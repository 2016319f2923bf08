// trainer/objectives/distill.h under tensor parallelism: with `mpirun -np 2` (a TP group of 2, the vocabulary split
// in halves) every objective and the chunked token loss (value, grad of the hidden states, grad of this rank's
// LM-head rows) equal the single-rank computation on the full vocabulary within 1e-6 in fp32 (relative to the
// tensor's largest magnitude above 1) and 1e-12 in fp64. Run alone (a world of one) the same checks hold trivially
// and exercise the code without MPI.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "test/util/mpi_test_main.h"
#include "trainer/objectives/distill.h"
#include "trainer/runtime/communicator_self.h"
#include "trainer/runtime/communicators.h"

namespace aligntrain::objectives {
namespace {

runtime::Groups& groups() {
  static runtime::Groups g = runtime::make_groups(testing::world(), testing::world().size(), runtime::Device::kCpu);
  return g;
}

// max |a − b| ≤ tol·max(1, max |b|): absolute for values of order one, relative to the tensor's scale above (the
// theorem1 modes carry a factor β₂ = 10).
void expect_close(const at::Tensor& a, const at::Tensor& b, double tol, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const auto a64 = a.detach().to(at::kDouble), b64 = b.detach().to(at::kDouble);
  const double scale = std::max(1.0, b64.abs().max().item<double>());
  EXPECT_LE((a64 - b64).abs().max().item<double>(), tol * scale) << what << " (scale " << scale << ")";
}

class ShardedObjectives : public ::testing::TestWithParam<at::ScalarType> {
 protected:
  static constexpr int64_t kN = 5, kV = 12, kH = 4, kK = 3;
  runtime::Communicator& g = *groups().tp;
  runtime::SelfCommunicator one;
  at::ScalarType dtype = GetParam();
  double tol = dtype == at::kDouble ? 1e-12 : 1e-6;
  int64_t local = kV / g.size();

  at::Tensor mine(const at::Tensor& full) const { return full.narrow(-1, g.rank() * local, local); }
  // The same random tensor on every rank.
  at::Tensor normal(std::vector<int64_t> shape, double std, uint64_t seed) const {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return at::normal(0.0, std, shape, gen).to(dtype);
  }

  // Values of f over the sharded logits equal f over the full ones, and so does the gradient of Σ r·f with respect
  // to the student logits (this rank's columns of the full gradient).
  void expect_matches(const std::function<at::Tensor(const at::Tensor&, runtime::Communicator&, bool)>& f,
                      const at::Tensor& student, const std::string& what) {
    const auto r = normal({kN}, 1.0, 99);
    const auto full = student.clone().requires_grad_(true);
    const auto want = f(full, one, false);
    (want * r).sum().backward();
    const auto part = mine(student).clone().requires_grad_(true);
    const auto got = f(part, g, true);
    (got * r).sum().backward();
    expect_close(got, want, tol, what + " value");
    expect_close(part.grad(), mine(full.grad()), tol, what + " gradient");
  }
};

TEST_P(ShardedObjectives, EveryFunctionEqualsUnsharded) {
  // Logits of unit scale: fp32 rounding of the intermediate log-probs, times β₂ = 10 in the theorem1 modes, then
  // stays below 1e-6 of the result's scale (fp64 shows the sharded algorithm itself is exact).
  const auto s = normal({kN, kV}, 1.0, 1), t = normal({kN, kV}, 1.0, 2), r = normal({kN, kV}, 1.0, 3);
  // Sharded (true) or full (false) view of a teacher tensor.
  const auto view = [&](const at::Tensor& full, bool sharded) { return sharded ? mine(full) : full; };

  for (auto [d, name] : {std::pair{Divergence::forward_kl, "FKL"}, {Divergence::reverse_kl, "RKL"},
                         {Divergence::jsd, "JSD"}, {Divergence::tvd, "TVD"}}) {
    for (double beta : {0.0, 0.3, 1.0}) {
      if (d != Divergence::jsd && beta != 0.0) continue;
      expect_matches(
          [&, d = d, beta](const at::Tensor& x, runtime::Communicator& c, bool sh) {
            return kd_divergence(view(t, sh), x, d, beta, 2.0, c);
          },
          s, std::string(name) + " β=" + std::to_string(beta));
    }
  }

  const auto table_full = teacher_table(t, kK, one), table = teacher_table(mine(t), kK, g);
  EXPECT_TRUE(table.indices.equal(table_full.indices));
  expect_close(table.probs, table_full.probs, tol, "table probs");
  expect_close(table.remaining, table_full.remaining, tol, "table remaining");
  expect_matches([&](const at::Tensor& x, runtime::Communicator& c, bool) { return dckd_kl(x, table, kV, c); }, s,
                 "DCKD");
  // Out-of-vocabulary ids (≥ 10 of 12) move into the rest bin on both layouts.
  expect_matches([&](const at::Tensor& x, runtime::Communicator& c, bool) { return dckd_kl(x, table, 10, c); }, s,
                 "DCKD student_vocab 10");

  const auto adv = adpa_advantages(table, teacher_table(mine(r), kK + 1, g));
  const auto adv_full = adpa_advantages(table_full, teacher_table(r, kK + 1, one));
  EXPECT_TRUE(adv.indices.equal(adv_full.indices));
  expect_close(adv.advantages, adv_full.advantages, tol, "advantages");
  for (const AdpaOptions& o : {AdpaOptions{true, 1.0}, AdpaOptions{false, 0.1}}) {
    expect_matches([&](const at::Tensor& x, runtime::Communicator& c, bool) { return adpa_term(x, adv, o, c); }, s,
                   std::string("ADPA clamp_targets=") + (o.clamp_targets ? "true" : "false"));
  }

  for (auto mode : {AlignDistilMode::aligndistil, AlignDistilMode::theorem1, AlignDistilMode::theorem1_contrast,
                    AlignDistilMode::theorem1_adaptive}) {
    AlignDistilOptions o;
    o.mode = mode;
    o.temperature = 1.5;
    expect_matches(
        [&](const at::Tensor& x, runtime::Communicator& c, bool sh) {
          return aligndistil(x, view(t, sh), view(r, sh), o, c);
        },
        s, "AlignDistil mode " + std::to_string(static_cast<int>(mode)));
  }
}

TEST_P(ShardedObjectives, ChunkedTokenLossEqualsUnsharded) {
  const auto hidden = normal({kN, kH}, 1.0, 4), w = normal({kV, kH}, 0.7, 5);
  const auto teacher_hidden = normal({kN, kH}, 1.0, 6), tw = normal({kV, kH}, 0.7, 7), rw = normal({kV, kH}, 0.7, 8);
  const auto weights = normal({kN}, 1.0, 9).abs() / kN;
  // The term under a group: teacher logits of the chunk from the teacher's hidden states and (sharded) head rows.
  const auto term = [&](runtime::Communicator& c, const at::Tensor& t_rows, const at::Tensor& r_rows) {
    const auto table = teacher_table(at::matmul(teacher_hidden, t_rows.t()), kK, c);
    return ChunkTerm([&c, t_rows, r_rows, table, &teacher_hidden](const at::Tensor& logits, int64_t start, int64_t n) {
      const auto th = teacher_hidden.narrow(0, start, n);
      const auto t = at::matmul(th, t_rows.t()), r = at::matmul(th, r_rows.t());
      const TeacherTable part{table.indices.narrow(0, start, n), table.probs.narrow(0, start, n),
                              table.remaining.narrow(0, start, n)};
      return kd_divergence(t, logits, Divergence::jsd, 0.3, 1.0, c) + aligndistil(logits, t, r, {}, c) +
             dckd_kl(logits, part, kV, c);
    });
  };
  const auto rows = [&](const at::Tensor& full) { return full.narrow(0, g.rank() * local, local); };

  const auto h1 = hidden.clone().requires_grad_(true), w1 = w.clone().requires_grad_(true);
  const auto want = chunked_token_loss(h1, w1, weights, term(one, tw, rw), one, 2);
  want.backward();
  const auto h2 = hidden.clone().requires_grad_(true), w2 = rows(w).clone().requires_grad_(true);
  const auto got = chunked_token_loss(h2, w2, weights, term(g, rows(tw), rows(rw)), g, 2);
  got.backward();
  expect_close(got, want, tol, "loss");
  expect_close(h2.grad(), h1.grad(), tol, "grad hidden");
  expect_close(w2.grad(), rows(w1.grad()), tol, "grad W rows");
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ShardedObjectives, ::testing::Values(at::kFloat, at::kDouble),
                         [](const auto& info) { return std::string(c10::toString(info.param)); });

}  // namespace
}  // namespace aligntrain::objectives
