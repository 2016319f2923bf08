// See gmm.h.
#include "trainer/objectives/gmm.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace aligntrain::objectives {

namespace {

constexpr double kLog2Pi = 1.8378770664093454835606594728112;

// Per-component log N(x | μ_k, Σ_k): [N, K].
at::Tensor component_log_prob(const at::Tensor& x, const at::Tensor& means, const at::Tensor& cov, bool full) {
  const int64_t n = x.size(0), d = x.size(1), k = means.size(0);
  auto out = at::empty({n, k}, x.options());
  for (int64_t c = 0; c < k; ++c) {
    const auto diff = x - means[c];
    at::Tensor maha, log_det;
    if (full) {
      const auto [chol, info] = at::linalg_cholesky_ex(cov[c]);
      if (info.item<int64_t>() != 0)
        throw std::runtime_error("Gaussian mixture: the covariance of component " + std::to_string(c) +
                                 " is not positive definite; increase select.reg_covar or use covariance: diag");
      const auto z = at::linalg_solve_triangular(chol, diff.t(), /*upper=*/false);  // L⁻¹(x − μ): [D, N]
      maha = z.pow(2).sum(0);
      log_det = 2 * chol.diagonal().log().sum();
    } else {
      maha = (diff.pow(2) / cov[c]).sum(1);
      log_det = cov[c].log().sum();
    }
    out.select(1, c).copy_(-0.5 * (static_cast<double>(d) * kLog2Pi + maha + log_det));
  }
  return out;
}

// The M-step of sklearn's _estimate_gaussian_parameters from responsibilities [N, K]; weights normalised.
GaussianMixture estimate(const at::Tensor& x, const at::Tensor& resp, const GmmOptions& o) {
  GaussianMixture g;
  const auto nk = resp.sum(0) + 10 * std::numeric_limits<double>::epsilon();
  g.means = resp.t().mm(x) / nk.unsqueeze(1);
  if (o.full) {
    const int64_t k = resp.size(1), d = x.size(1);
    g.covariances = at::empty({k, d, d}, x.options());
    for (int64_t c = 0; c < k; ++c) {
      const auto diff = x - g.means[c];
      g.covariances[c].copy_((resp.select(1, c).unsqueeze(1) * diff).t().mm(diff) / nk[c]);
      g.covariances[c].diagonal().add_(o.reg_covar);
    }
  } else {
    g.covariances = resp.t().mm(x * x) / nk.unsqueeze(1) - g.means.pow(2) + o.reg_covar;
  }
  g.weights = nk / nk.sum();
  return g;
}

}  // namespace

at::Tensor GaussianMixture::log_density(const at::Tensor& x) const {
  const auto xd = x.to(at::kDouble);
  return at::logsumexp(component_log_prob(xd, means, covariances, covariances.dim() == 3) + weights.log().unsqueeze(0), 1);
}

GaussianMixture farthest_point_init(const at::Tensor& x_in, const GmmOptions& o) {
  const auto x = x_in.to(at::kDouble).contiguous();
  const int64_t n = x.size(0), k = o.components;
  if (n < k)
    throw std::runtime_error("Gaussian mixture: " + std::to_string(k) + " components need at least " +
                             std::to_string(k) + " examples, got " + std::to_string(n));
  auto dist = [&](const at::Tensor& point) { return (x - point).pow(2).sum(1); };  // squared distances [N]
  std::vector<int64_t> chosen = {dist(x.mean(0)).argmax().item<int64_t>()};     // argmax: the first maximum
  auto nearest = dist(x[chosen[0]]);
  while (static_cast<int64_t>(chosen.size()) < k) {
    chosen.push_back(nearest.argmax().item<int64_t>());
    nearest = at::minimum(nearest, dist(x[chosen.back()]));
  }
  auto d = at::empty({n, k}, x.options());
  for (int64_t c = 0; c < k; ++c) d.select(1, c).copy_(dist(x[chosen[static_cast<size_t>(c)]]));
  const auto label = d.argmin(1);
  const auto resp = at::zeros({n, k}, x.options()).scatter_(1, label.unsqueeze(1), 1.0);
  return estimate(x, resp, o);
}

GaussianMixture fit_gmm(const at::Tensor& x_in, const GmmOptions& o, GaussianMixture g) {
  const auto x = x_in.to(at::kDouble).contiguous();
  double lower_bound = -std::numeric_limits<double>::infinity();
  for (int it = 1; it <= o.max_iter; ++it) {
    const double previous = lower_bound;
    const auto weighted = component_log_prob(x, g.means, g.covariances, o.full) + g.weights.log().unsqueeze(0);
    const auto norm = at::logsumexp(weighted, 1);
    const auto resp = (weighted - norm.unsqueeze(1)).exp();
    GaussianMixture next = estimate(x, resp, o);
    lower_bound = norm.mean().item<double>();
    next.n_iter = it;
    next.lower_bound = lower_bound;
    g = std::move(next);
    if (std::abs(lower_bound - previous) < o.tol) {
      g.converged = true;
      break;
    }
  }
  return g;
}

}  // namespace aligntrain::objectives
