// BCO UDM's classifier (trainer/objectives/logistic.h): a case solved by hand, the optimality conditions on random
// data, class balancing, and the density-ratio weight.
#include "trainer/objectives/logistic.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <stdexcept>

namespace aligntrain::objectives {
namespace {

TEST(Logistic, SymmetricOneDimensionalCase) {
  // x = -1 (class 0) and x = 1 (class 1): by symmetry the intercept is 0 and the slope b solves
  // b = 2·σ(−b) (the gradient of log(1+e^{−b}) + log(1+e^{−b}) + b²/2), b = 0.6748316143423994 (Newton in Python).
  const auto m = fit_logistic_regression(at::tensor({-1.0, 1.0}).view({2, 1}), at::tensor({0, 1}));
  EXPECT_NEAR(m.coef[0].item<double>(), 0.6748316143423994, 1e-10);
  EXPECT_NEAR(m.intercept, 0.0, 1e-12);
}

TEST(Logistic, GradientVanishesAtTheFitWithBalancedWeights) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const int64_t n = 40, d = 5;
  const auto x = at::normal(0.0, 1.0, {n, d}, gen).to(at::kDouble);
  auto y = (x.select(1, 0) + 0.5 * at::normal(0.0, 1.0, {n}, gen).to(at::kDouble) > 0.8).to(at::kLong);  // unbalanced
  const double n1 = y.sum().item<double>(), n0 = n - n1;
  ASSERT_GT(n1, 2);
  ASSERT_GT(n0, n1);
  const auto m = fit_logistic_regression(x, y, 0.7);
  // The objective's gradient, computed here from its definition: C·Σ w_i (p_i − y_i) x_i + coef, and for the
  // intercept C·Σ w_i (p_i − y_i), with w_i = n / (2·n_{y_i}).
  const auto yd = y.to(at::kDouble);
  const auto w = at::where(yd > 0.5, at::full_like(yd, n / (2 * n1)), at::full_like(yd, n / (2 * n0)));
  const auto p = m.predict(x);
  const auto g = 0.7 * at::matmul(x.t(), w * (p - yd)) + m.coef;
  EXPECT_LT(g.abs().max().item<double>(), 1e-8);
  EXPECT_LT(std::abs(0.7 * (w * (p - yd)).sum().item<double>()), 1e-8);
  // Balanced weights: the weighted mean prediction is ½ per class total.
  EXPECT_NEAR((w * p).sum().item<double>(), (w * yd).sum().item<double>(), 1e-8);
}

TEST(Logistic, NeedsBothClasses) {
  EXPECT_THROW(fit_logistic_regression(at::ones({3, 2}), at::ones({3})), std::invalid_argument);
}

TEST(Logistic, UdmWeightIsTheClampedDensityRatio) {
  // METHODS.md C.11: p = 0.8 gives w = 4 (the worked example); clamped to [0.5, 10].
  const auto w = udm_weight(at::tensor({0.8, 0.05, 0.99, 0.5}, at::kDouble), 0.5, 10.0);
  EXPECT_NEAR(w[0].item<double>(), 0.8 / (0.2 + 1e-8), 1e-12);
  EXPECT_NEAR(w[0].item<double>(), 4.0, 1e-6);
  EXPECT_DOUBLE_EQ(w[1].item<double>(), 0.5);
  EXPECT_DOUBLE_EQ(w[2].item<double>(), 10.0);
  EXPECT_NEAR(w[3].item<double>(), 1.0, 1e-7);
}

}  // namespace
}  // namespace aligntrain::objectives
