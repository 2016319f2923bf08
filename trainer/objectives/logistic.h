// Class-balanced L2-regularised logistic regression, the classifier of BCO's underlying-distribution matching
// (METHODS.md C.11: scikit-learn's LogisticRegression(class_weight="balanced") with its defaults C = 1, an
// unpenalised intercept). Fitted by Newton's method in float64 to a gradient norm below 1e-10 (the objective is
// strictly convex, so this is its unique minimum whatever the solver).
#pragma once

#include <ATen/core/Tensor.h>

namespace aligntrain::objectives {

struct LogisticModel {
  at::Tensor coef;        // [D] fp64
  double intercept = 0;

  // P(y = 1 | x) for rows x [N, D]: [N] fp64.
  at::Tensor predict(const at::Tensor& x) const;
};

// Minimises C·Σ_i w_i·(log(1 + exp(z_i)) − y_i·z_i) + ½‖coef‖², z = x·coef + intercept, with balanced weights
// w_i = N / (2·N_{y_i}). x [N, D], y [N] (bool or 0/1). Throws std::invalid_argument unless both classes occur.
LogisticModel fit_logistic_regression(const at::Tensor& x, const at::Tensor& y, double c = 1.0);

// BCO's UDM weight of an undesirable example from p = P(desirable | prompt): clamp(p / (1 − p + 1e-8), lo, hi).
at::Tensor udm_weight(const at::Tensor& p, double min_ratio, double max_ratio);

}  // namespace aligntrain::objectives
