// See logistic.h.
#include "trainer/objectives/logistic.h"

#include <ATen/ATen.h>

#include <stdexcept>

namespace aligntrain::objectives {

at::Tensor LogisticModel::predict(const at::Tensor& x) const {
  return at::sigmoid(at::matmul(x.to(at::kDouble), coef) + intercept);
}

LogisticModel fit_logistic_regression(const at::Tensor& x_in, const at::Tensor& y_in, double c) {
  const auto x = x_in.to(at::kDouble).cpu();
  const auto y = y_in.to(at::kDouble).cpu();
  const int64_t n = x.size(0), d = x.size(1);
  const double n1 = y.sum().item<double>(), n0 = static_cast<double>(n) - n1;
  if (n1 < 1 || n0 < 1) {
    throw std::invalid_argument("logistic regression needs examples of both classes (got " + std::to_string(int64_t(n1)) +
                                " and " + std::to_string(int64_t(n0)) + ")");
  }
  const auto w = c * at::where(y > 0.5, at::full_like(y, n / (2 * n1)), at::full_like(y, n / (2 * n0)));
  const auto xa = at::cat({x, at::ones({n, 1}, x.options())}, 1);  // the intercept is the last column
  auto theta = at::zeros({d + 1}, x.options());
  auto reg = at::ones({d + 1}, x.options());
  reg[d] = 0.0;  // no penalty on the intercept
  for (int it = 0; it < 100; ++it) {
    const auto p = at::sigmoid(at::matmul(xa, theta));
    const auto grad = at::matmul(xa.t(), w * (p - y)) + reg * theta;
    if (grad.norm().item<double>() < 1e-10) break;
    const auto h = at::matmul(xa.t() * (w * p * (1 - p)).unsqueeze(0), xa) + at::diag(reg) +
                   1e-12 * at::eye(d + 1, x.options());
    theta = theta - at::linalg_solve(h, grad);
  }
  return {theta.narrow(0, 0, d).clone(), theta[d].item<double>()};
}

at::Tensor udm_weight(const at::Tensor& p, double min_ratio, double max_ratio) {
  return (p / (1.0 - p + 1e-8)).clamp(min_ratio, max_ratio);
}

}  // namespace aligntrain::objectives
