// Pure losses of the DPO family, KTO, BCO and D2O (METHODS.md §0, §C). See preference.h for the contract.
//
// Everything is computed with ATen ops in the dtype of the policy log-probs (the tests use fp64); lengths are cast
// to that dtype. Reference log-probs are detached defensively. Metrics are detached and built without autograd.
#include "trainer/objectives/preference.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace aligntrain::objectives {

namespace {

using config::LossType;

std::string name(LossType t) { return config::to_string(t); }

const at::Tensor& need(const at::Tensor& t, const char* what, LossType type) {
  if (!t.defined()) {
    throw std::invalid_argument("objectives: loss type '" + name(type) + "' needs " + what +
                                ", which the caller left undefined");
  }
  return t;
}

// A per-example [B] input in the computing dtype of `like` (lengths may arrive as integers).
at::Tensor as_like(const at::Tensor& t, const at::Tensor& like) {
  return t.scalar_type() == like.scalar_type() ? t : t.to(like.scalar_type());
}

void check_smoothing(double eps, LossType type) {
  if (!(eps >= 0.0 && eps < 0.5)) {
    throw std::invalid_argument("objectives: label_smoothing of loss type '" + name(type) +
                                "' must be in [0, 0.5), got " + std::to_string(eps));
  }
}

// −(1−ε)·logσ(z) − ε·logσ(−z): DPO (ε = 0), cDPO, CPO-sigmoid.
at::Tensor smoothed_sigmoid_loss(const at::Tensor& z, double eps) {
  at::Tensor loss = -objectives::log_sigmoid(z);
  if (eps != 0.0) loss = loss * (1.0 - eps) - objectives::log_sigmoid(-z) * eps;
  return loss;
}

at::Tensor nan_like(const at::Tensor& t) { return at::full_like(t, std::numeric_limits<double>::quiet_NaN()); }

// The six TRL metrics shared by every paired type. `reward_w`, `reward_l` are the (implicit) rewards; `logp_w`,
// `logp_l` the policy's summed log-probs.
void add_reward_metrics(LossTerms& out, const at::Tensor& reward_w, const at::Tensor& reward_l,
                        const at::Tensor& logp_w, const at::Tensor& logp_l) {
  at::NoGradGuard no_grad;
  const auto rw = reward_w.detach(), rl = reward_l.detach();
  out.metrics.emplace_back("rewards/chosen", rw);
  out.metrics.emplace_back("rewards/rejected", rl);
  out.metrics.emplace_back("rewards/accuracies", (rw > rl).to(rw.scalar_type()));
  out.metrics.emplace_back("rewards/margins", rw - rl);
  out.metrics.emplace_back("logps/chosen", logp_w.detach());
  out.metrics.emplace_back("logps/rejected", logp_l.detach());
}

void add_metric(LossTerms& out, const std::string& key, const at::Tensor& value) {
  out.metrics.emplace_back(key, value.detach());
}

// KTO/BCO: β·ρ and the policy log-prob split by label, NaN where the example has the other label.
void add_unpaired_metrics(LossTerms& out, const at::Tensor& reward, const at::Tensor& policy_logp,
                          const at::Tensor& desirable) {
  at::NoGradGuard no_grad;
  const auto r = reward.detach(), lp = policy_logp.detach();
  out.metrics.emplace_back("rewards/chosen", at::where(desirable, r, nan_like(r)));
  out.metrics.emplace_back("rewards/rejected", at::where(desirable, nan_like(r), r));
  out.metrics.emplace_back("logps/chosen", at::where(desirable, lp, nan_like(lp)));
  out.metrics.emplace_back("logps/rejected", at::where(desirable, nan_like(lp), lp));
}

at::Tensor as_bool(const at::Tensor& desirable, const at::Tensor& like, const char* fn) {
  if (!desirable.defined() || desirable.sizes() != like.sizes()) {
    throw std::invalid_argument(std::string("objectives: ") + fn +
                                ": `desirable` must be defined with the shape of the log-probs");
  }
  return desirable.scalar_type() == at::kBool ? desirable : desirable.ne(0);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Stable helpers

// logσ(u) = −softplus(−u) = min(u, 0) − log1p(e^−|u|). ATen's log_sigmoid computes exactly this form (the same
// kernel as F.logsigmoid used by TRL) and has an exact backward σ(−u), including at u = 0.
at::Tensor log_sigmoid(const at::Tensor& u) { return at::log_sigmoid(u); }

// log(1 − e^u), u < 0 (METHODS §C.8): log1p(−e^u) for u < −ln 2, log(−expm1 u) otherwise. Each branch gets its input
// clamped into its own range, so the branch not taken is finite and contributes an exact zero to the gradient.
at::Tensor log1mexp(const at::Tensor& u) {
  const double ln2 = std::log(2.0);
  const auto far = at::log1p(-at::exp(at::clamp_max(u, -ln2)));
  const auto near = at::log(-at::expm1(at::clamp_min(u, -ln2)));
  return at::where(u < -ln2, far, near);
}

// g(u) = u / (e^u − 1), g(0) = 1. |u| < 1e-4: the Taylor series 1 − u/2 + u²/12 − u⁴/720 (next term u⁶/30240, far
// below fp64 rounding there); u > 0: u·e^−u / (−expm1(−u)), which tends to 0 with a finite gradient for large u;
// u < 0: u / expm1(u). Inputs are clamped per branch as in log1mexp.
at::Tensor mapo_g(const at::Tensor& u) {
  constexpr double kSmall = 1e-4;
  const auto us = at::clamp(u, -kSmall, kSmall);
  const auto us2 = us * us;
  const auto series = 1.0 - us * 0.5 + us2 * (1.0 / 12.0) - us2 * us2 * (1.0 / 720.0);
  const auto up = at::clamp_min(u, kSmall);
  const auto pos = up * at::exp(-up) / (-at::expm1(-up));
  const auto un = at::clamp_max(u, -kSmall);
  const auto neg = un / at::expm1(un);
  return at::where(at::abs(u) < kSmall, series, at::where(u > 0, pos, neg));
}

// ---------------------------------------------------------------------------------------------------------------
// Paired losses

LossTerms paired_loss(LossType type, const config::LossConfig& cfg, double beta, const PairLogps& in) {
  using L = LossType;
  LossTerms out;
  const auto& pw = need(in.chosen, "chosen log-probs", type);

  // sft alone may come without the rejected response.
  if (type == L::sft) {
    const auto& nll = need(in.chosen_nll, "chosen_nll", type);
    out.loss = nll;
    if (in.rejected.defined() && in.chosen_len.defined() && in.rejected_len.defined()) {
      // No β for sft: the implicit rewards are the average log-probs (scale 1), so that a preference or eval stage
      // whose only type is sft still reports how the policy ranks the pair.
      const auto aw = pw / as_like(in.chosen_len, pw);
      const auto al = as_like(in.rejected, pw) / as_like(in.rejected_len, pw);
      add_reward_metrics(out, aw, al, pw, in.rejected);
    } else {
      add_metric(out, "logps/chosen", pw);
    }
    add_metric(out, "nll", nll);
    return out;
  }

  const auto pl = as_like(need(in.rejected, "rejected log-probs", type), pw);
  // Average log-probs, for the length-normalised types.
  auto avg = [&]() {
    const auto lw = as_like(need(in.chosen_len, "chosen_len", type), pw);
    const auto ll = as_like(need(in.rejected_len, "rejected_len", type), pw);
    return std::make_pair(pw / lw, pl / ll);
  };

  if (config::is_reference_free(type)) {
    switch (type) {
      case L::simpo: {
        // −logσ(β·(avg_w − avg_l) − γ), γ = gamma_beta_ratio·β (official SimPO: β·(Δavg − γ/β)); no smoothing,
        // no NLL (sft_weight = 0; add an sft type to the mix for one). Rewards: β·avg logπ as SimPO and TRL log.
        const auto [aw, al] = avg();
        out.loss = -objectives::log_sigmoid((aw - al) * beta - cfg.gamma_beta_ratio * beta);
        add_reward_metrics(out, aw * beta, al * beta, pw, pl);
        return out;
      }
      case L::orpo: {
        // L = NLL − λ·logσ(log_odds) (TRL odds_ratio_loss), λ = cfg.orpo_lambda; `beta` is not used (ORPO has
        // none, default_beta(orpo) is unset). The odds use the response-only average log-probs; the NLL is over
        // prompt + response when orpo_prompt_in_nll and the caller computed it, else over the response.
        const auto [aw, al] = avg();
        const auto& nll = cfg.orpo_prompt_in_nll && in.chosen_nll_with_prompt.defined()
                              ? in.chosen_nll_with_prompt
                              : need(in.chosen_nll, "chosen_nll", type);
        const auto log_odds = (aw - al) - (objectives::log1mexp(aw) - objectives::log1mexp(al));
        const auto ratio = objectives::log_sigmoid(log_odds);
        out.loss = nll - ratio * cfg.orpo_lambda;
        // Rewards λ·avg logπ as TRL's ORPO logs them.
        add_reward_metrics(out, aw * cfg.orpo_lambda, al * cfg.orpo_lambda, pw, pl);
        add_metric(out, "nll", nll);
        add_metric(out, "log_odds_ratio", ratio);      // TRL's name for logσ(log_odds)
        add_metric(out, "log_odds_chosen", log_odds);  // TRL's name for log_odds itself
        return out;
      }
      case L::cpo: {
        // TRL CPO `sigmoid`: −(1−ε)·logσ(β·d) − ε·logσ(−β·d) + cpo_alpha·NLL(y_w), d on the SUMMED log-probs
        // (METHODS C.9: summed for sigmoid/hinge). With alpha ≠ 0 (AlphaPO) each summed log-prob is first mapped to
        // r = (1 − p^−α)/α, p = exp(logπ), computed as −expm1(−α·logπ)/α; this is what TRL does for its sigmoid
        // loss (the AlphaPO paper pairs the shape with SimPO's average log-probs, TRL's loss_type="simpo").
        check_smoothing(cfg.label_smoothing, type);
        const auto& nll = need(in.chosen_nll, "chosen_nll", type);
        at::Tensor rw = pw, rl = pl;
        if (cfg.alpha != 0.0) {
          rw = -at::expm1(pw * (-cfg.alpha)) / cfg.alpha;
          rl = -at::expm1(pl * (-cfg.alpha)) / cfg.alpha;
        }
        out.loss = smoothed_sigmoid_loss((rw - rl) * beta, cfg.label_smoothing);
        if (cfg.cpo_alpha != 0.0) out.loss = out.loss + nll * cfg.cpo_alpha;
        // Rewards β·logπ (β·r with AlphaPO), as TRL's CPO logs them.
        add_reward_metrics(out, rw * beta, rl * beta, pw, pl);
        add_metric(out, "nll", nll);
        return out;
      }
      case L::mapo: {
        // LLM adaptation of MaPO (METHODS C.13, flagged): ℓ_w = chosen_nll, ℓ_l = −rejected/|y_l| (mean token NLLs),
        // m = g(s·ℓ_w) − g(s·ℓ_l), L = ℓ_w − β·logσ(T·m).
        const auto& lw = need(in.chosen_nll, "chosen_nll", type);
        const auto [aw, al] = avg();
        const auto ll = -al;
        const auto m = objectives::mapo_g(lw * cfg.mapo_snr) - objectives::mapo_g(ll * cfg.mapo_snr);
        out.loss = lw - objectives::log_sigmoid(m * cfg.mapo_timesteps) * beta;
        // Rewards β·avg logπ (as for SimPO/ORPO; MaPO itself logs none).
        add_reward_metrics(out, aw * beta, al * beta, pw, pl);
        add_metric(out, "nll", lw);
        add_metric(out, "log_odds", m);  // the official code's name for m
        return out;
      }
      default: break;
    }
  } else {
    const auto rw = need(in.ref_chosen, "reference log-probs (ref_chosen)", type).detach();
    const auto rl = need(in.ref_rejected, "reference log-probs (ref_rejected)", type).detach();
    const auto rho_w = pw - as_like(rw, pw);
    const auto rho_l = pl - as_like(rl, pw);
    const auto h = rho_w - rho_l;
    switch (type) {
      case L::dpo: out.loss = -objectives::log_sigmoid(h * beta); break;
      case L::cdpo:
        check_smoothing(cfg.label_smoothing, type);
        out.loss = smoothed_sigmoid_loss(h * beta, cfg.label_smoothing);
        break;
      case L::robust: {
        check_smoothing(cfg.label_smoothing, type);
        const double eps = cfg.label_smoothing;
        const auto z = h * beta;
        out.loss = (-objectives::log_sigmoid(z) * (1.0 - eps) + objectives::log_sigmoid(-z) * eps) / (1.0 - 2.0 * eps);
        break;
      }
      case L::hinge: out.loss = at::relu(1.0 - h * beta); break;
      case L::ipo: {
        if (!(beta > 0.0)) throw std::invalid_argument("objectives: ipo needs beta > 0");
        at::Tensor hh = h;
        if (!cfg.ipo_raw) {
          const auto lw = as_like(need(in.chosen_len, "chosen_len", type), pw);
          const auto ll = as_like(need(in.rejected_len, "rejected_len", type), pw);
          hh = rho_w / lw - rho_l / ll;
        }
        out.loss = at::pow(hh - 1.0 / (2.0 * beta), 2);
        break;
      }
      case L::ln_dpo: {
        const auto lw = as_like(need(in.chosen_len, "chosen_len", type), pw);
        const auto ll = as_like(need(in.rejected_len, "rejected_len", type), pw);
        out.loss = -objectives::log_sigmoid((rho_w / lw - rho_l / ll) * beta);
        break;
      }
      case L::bco_pair:
        out.loss = -objectives::log_sigmoid(rho_w * beta) - objectives::log_sigmoid(-rho_l * beta);
        break;
      default: throw std::invalid_argument("objectives: '" + name(type) + "' is not a paired preference loss type");
    }
    add_reward_metrics(out, rho_w * beta, rho_l * beta, pw, pl);
    return out;
  }
  throw std::invalid_argument("objectives: '" + name(type) + "' is not a paired preference loss type");
}

LossTerms paired_loss_mix(const config::LossConfig& cfg, double beta, const PairLogps& in) {
  if (cfg.type.empty()) throw std::invalid_argument("objectives: loss.type is empty");
  if (!cfg.weights.empty() && cfg.weights.size() != cfg.type.size()) {
    throw std::invalid_argument("objectives: loss.weights has " + std::to_string(cfg.weights.size()) + " entries for " +
                                std::to_string(cfg.type.size()) + " loss types");
  }
  LossTerms out;
  std::vector<std::pair<std::string, at::Tensor>> per_type;
  for (size_t i = 0; i < cfg.type.size(); ++i) {
    auto terms = paired_loss(cfg.type[i], cfg, beta, in);
    const double w = cfg.weights.empty() ? 1.0 : cfg.weights[i];
    // "loss/<type>": the unweighted per-example loss of that type.
    per_type.emplace_back("loss/" + name(cfg.type[i]), terms.loss.detach());
    const auto weighted = w == 1.0 ? terms.loss : terms.loss * w;
    if (i == 0) {
      out.loss = weighted;
      out.metrics = std::move(terms.metrics);
    } else {
      out.loss = out.loss + weighted;
    }
  }
  for (auto& m : per_type) out.metrics.push_back(std::move(m));
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Unpaired: KTO, BCO

LossTerms kto_loss(const config::LossConfig& cfg, double beta, const at::Tensor& policy_logp,
                   const at::Tensor& ref_logp, const at::Tensor& desirable, double z0) {
  if (!policy_logp.defined() || !ref_logp.defined())
    throw std::invalid_argument("objectives: kto needs policy and reference log-probs");
  const auto d = as_bool(desirable, policy_logp, "kto_loss");
  const auto rho = policy_logp - as_like(ref_logp.detach(), policy_logp);
  // 1 − σ(x) written as σ(−x): desirable λ_D·(1 − σ(β(ρ − z0))), undesirable λ_U·(1 − σ(β(z0 − ρ))).
  const auto chosen = at::sigmoid((rho - z0) * (-beta)) * cfg.desirable_weight;
  const auto rejected = at::sigmoid((rho - z0) * beta) * cfg.undesirable_weight;
  LossTerms out;
  out.loss = at::where(d, chosen, rejected);
  add_unpaired_metrics(out, rho * beta, policy_logp, d);
  at::NoGradGuard no_grad;
  out.metrics.emplace_back("kl", at::full_like(rho.detach(), z0));
  return out;
}

double kto_z0(double sum_of_log_ratios, double count) {
  // No mismatched pair at all (count 0): no estimate, and the clamp's floor 0 is the reference point.
  if (!(count > 0.0)) return 0.0;
  return std::max(sum_of_log_ratios / count, 0.0);
}

LossTerms bco_loss(const config::LossConfig& cfg, double beta, const at::Tensor& policy_logp,
                   const at::Tensor& ref_logp, const at::Tensor& desirable, double delta,
                   const at::Tensor& udm_weight) {
  if (!policy_logp.defined() || !ref_logp.defined())
    throw std::invalid_argument("objectives: bco needs policy and reference log-probs");
  const auto d = as_bool(desirable, policy_logp, "bco_loss");
  const auto r = (policy_logp - as_like(ref_logp.detach(), policy_logp)) * beta;
  const auto chosen = -objectives::log_sigmoid(r - delta);
  at::Tensor rejected = -objectives::log_sigmoid(-(r - delta));
  if (udm_weight.defined()) rejected = rejected * as_like(udm_weight.detach(), policy_logp);  // undesirable only
  LossTerms out;
  out.loss = at::where(d, chosen, rejected);
  add_unpaired_metrics(out, r, policy_logp, d);
  at::NoGradGuard no_grad;
  out.metrics.emplace_back("delta", at::full_like(r.detach(), delta));
  return out;
}

std::pair<double, double> running_mean_update(double mean, double count, double batch_mean, double batch_count) {
  // TRL RunningMoments.update: tot = n + n_b; mean += (m_b − mean)·n_b/tot; n = tot.
  const double total = count + batch_count;
  if (!(total > 0.0)) return {mean, count};
  return {mean + (batch_mean - mean) * batch_count / total, total};
}

// ---------------------------------------------------------------------------------------------------------------
// Negatives: D2O

LossTerms d2o_loss(const config::LossConfig& cfg, double beta, const at::Tensor& sample_log_ratio,
                   const at::Tensor& negative_log_ratio) {
  if (!sample_log_ratio.defined() || sample_log_ratio.dim() != 2 || sample_log_ratio.size(1) < 1) {
    throw std::invalid_argument("objectives: d2o needs sample_log_ratio of shape [B, K] with K >= 1");
  }
  if (!negative_log_ratio.defined() || negative_log_ratio.dim() != 1 ||
      negative_log_ratio.size(0) != sample_log_ratio.size(0)) {
    throw std::invalid_argument("objectives: d2o needs negative_log_ratio of shape [B]");
  }
  const auto neg = as_like(negative_log_ratio, sample_log_ratio);
  const double k = static_cast<double>(sample_log_ratio.size(1));
  // (β/K)·Σ_k: the samples play y_w's part, so with K = 1 and α = β the loss and the metrics are DPO's.
  const auto chosen = sample_log_ratio.sum(1) * (beta / k);
  const auto rejected = neg * cfg.d2o_alpha;
  LossTerms out;
  out.loss = -objectives::log_sigmoid(chosen - rejected);
  at::NoGradGuard no_grad;
  const auto rw = chosen.detach(), rl = rejected.detach();
  out.metrics.emplace_back("rewards/chosen", rw);
  out.metrics.emplace_back("rewards/rejected", rl);
  out.metrics.emplace_back("rewards/accuracies", (rw > rl).to(rw.scalar_type()));
  out.metrics.emplace_back("rewards/margins", rw - rl);
  return out;
}

}  // namespace aligntrain::objectives
