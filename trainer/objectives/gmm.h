// A Gaussian mixture fitted by EM, in fp64, exactly as scikit-learn's GaussianMixture (n_init = 1): reg_covar added
// to every variance, component masses nk = Σ resp + 10·eps, stop when the mean log-likelihood changes by less than
// tol or after max_iter iterations, parameters those of the last M-step. ISA (METHODS.md E.2) fits one to the
// embeddings of a candidate pool and ranks examples by their surprisal under it.
#pragma once

#include <ATen/ATen.h>

namespace aligntrain::objectives {

struct GmmOptions {
  int components = 2;
  bool full = false;  // full covariance matrices; false: diagonal
  int max_iter = 100;
  double tol = 1e-3;
  double reg_covar = 1e-6;
};

struct GaussianMixture {
  at::Tensor weights;      // [K]
  at::Tensor means;        // [K, D]
  at::Tensor covariances;  // [K, D, D] (full) or [K, D] (diagonal)
  int n_iter = 0;
  bool converged = false;
  double lower_bound = 0;  // mean log-likelihood of the data, computed in the last E-step (sklearn's lower_bound_)

  // log p(x) of each row of x [N, D].
  at::Tensor log_density(const at::Tensor& x) const;
};

// Deterministic start: the first mean is the row farthest from the data mean, each next one the row farthest from
// the means chosen so far (largest minimum distance; ties: lowest row); rows are hard-assigned to their nearest mean
// (ties: lowest component) and the parameters estimated from that assignment.
GaussianMixture farthest_point_init(const at::Tensor& x, const GmmOptions& options);

// EM from `init` on x [N, D] (converted to fp64).
GaussianMixture fit_gmm(const at::Tensor& x, const GmmOptions& options, GaussianMixture init);

}  // namespace aligntrain::objectives
