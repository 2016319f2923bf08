// ISA's Gaussian mixture (trainer/objectives/gmm.h): EM recovers two separated clusters (full and diagonal), the
// log-density is that of the mixture formula, the farthest-point start is deterministic, and stopping follows tol and
// max_iter. Parity with scikit-learn's GaussianMixture on real embeddings: test/stages/select_isa_test.sh.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>

#include "trainer/objectives/gmm.h"

namespace aligntrain::objectives {
namespace {

// 300 points around (−4, 0, 1) and 100 around (3, 2, −1), with per-axis spreads.
at::Tensor two_clusters() {
  at::manual_seed(3);
  const auto spread = at::tensor({0.5, 1.0, 0.2}, at::kDouble);
  const auto a = at::randn({300, 3}, at::kDouble) * spread + at::tensor({-4.0, 0.0, 1.0}, at::kDouble);
  const auto b = at::randn({100, 3}, at::kDouble) * spread * 0.5 + at::tensor({3.0, 2.0, -1.0}, at::kDouble);
  return at::cat({a, b});
}

TEST(Gmm, RecoversTwoSeparatedClusters) {
  const auto x = two_clusters();
  for (bool full : {false, true}) {
    GmmOptions o;
    o.full = full;
    o.tol = 1e-8;
    const auto g = fit_gmm(x, o, farthest_point_init(x, o));
    EXPECT_TRUE(g.converged);
    EXPECT_LT(g.n_iter, o.max_iter);
    const int64_t big = g.weights[0].item<double>() > 0.5 ? 0 : 1;
    EXPECT_NEAR(g.weights[big].item<double>(), 0.75, 1e-9) << "full " << full;
    EXPECT_TRUE(at::allclose(g.means[big], x.slice(0, 0, 300).mean(0), 0, 1e-6));
    EXPECT_TRUE(at::allclose(g.means[1 - big], x.slice(0, 300).mean(0), 0, 1e-6));
    const auto var = full ? g.covariances[1 - big].diagonal() : g.covariances[1 - big];
    EXPECT_TRUE(at::allclose(var, x.slice(0, 300).var(0, /*unbiased=*/false) + o.reg_covar, 0, 1e-6));
    EXPECT_NEAR(g.lower_bound, g.log_density(x).mean().item<double>(), 1e-6);
  }
}

TEST(Gmm, LogDensityIsTheMixtureFormula) {
  GaussianMixture g;
  g.weights = at::tensor({0.25, 0.75}, at::kDouble);
  g.means = at::tensor({0.0, 0.0, 1.0, -1.0}, at::kDouble).view({2, 2});
  g.covariances = at::tensor({1.0, 4.0, 0.5, 0.25}, at::kDouble).view({2, 2});
  const double x0 = 0.3, x1 = -0.2;
  auto normal = [](double x, double mu, double var) {
    return std::exp(-0.5 * (x - mu) * (x - mu) / var) / std::sqrt(2 * M_PI * var);
  };
  const double want = std::log(0.25 * normal(x0, 0, 1) * normal(x1, 0, 4) + 0.75 * normal(x0, 1, 0.5) * normal(x1, -1, 0.25));
  const auto x = at::tensor({x0, x1}, at::kDouble).view({1, 2});
  EXPECT_NEAR(g.log_density(x).item<double>(), want, 1e-12);
  GaussianMixture full = g;
  full.covariances = at::diag_embed(g.covariances);
  EXPECT_NEAR(full.log_density(x).item<double>(), want, 1e-12);
}

TEST(Gmm, FarthestPointStartAndStopping) {
  const auto x = at::tensor({0.0, 0.1, 0.2, 10.0, 10.1, 5.0}, at::kDouble).unsqueeze(1);
  GmmOptions o;
  o.reg_covar = 0;
  const auto init = farthest_point_init(x, o);
  // Data mean 4.23: the farthest row is 10.1 (row 4), the farthest from it 0.0; 5.0 is nearer 0.0 (5.0 < 5.1).
  EXPECT_TRUE(at::allclose(init.means.squeeze(1), at::tensor({10.05, 5.3 / 4}, at::kDouble), 0, 1e-9));
  EXPECT_TRUE(at::allclose(init.weights, at::tensor({2.0 / 6, 4.0 / 6}, at::kDouble), 0, 1e-9));
  o.max_iter = 1;
  const auto one = fit_gmm(x, o, init);
  EXPECT_EQ(one.n_iter, 1);
  EXPECT_FALSE(one.converged);
  o.components = 7;
  EXPECT_THROW(farthest_point_init(x, o), std::runtime_error);
}

}  // namespace
}  // namespace aligntrain::objectives
