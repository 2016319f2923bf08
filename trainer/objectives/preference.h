// Pure loss functions of the DPO family, KTO, BCO and D2O (METHODS.md §0, §C) over per-example sequence log-probs.
// No model, no data, no communication: the stages compute the log-probs (and any statistic that must be
// all-reduced over data-parallel ranks, such as KTO's z0 or BCO's running mean δ) and pass them in.
//
// Every function returns one loss per example ([B], differentiable through the policy log-probs) and per-example
// metrics ([B], detached, TRL's names); the stage averages both over the *global* batch (DESIGN.md §6).
//
// NLL terms (sft, cpo's cpo_alpha, orpo, mapo, and the optional NLL added to any type) use the per-example mean
// token NLL of the chosen response, `chosen_nll` below; the batch mean of those is the term (TRL takes a token mean
// over the whole batch instead; the two agree when responses have equal length).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

#include "config/schema.h"

namespace aligntrain::objectives {

// Per-example [B] tensors, fp32 or fp64, on one device.
struct PairLogps {
  at::Tensor chosen, rejected;          // Σ log πθ over response tokens (differentiable)
  at::Tensor chosen_len, rejected_len;  // |y|: response tokens carrying loss (float, > 0)
  at::Tensor ref_chosen, ref_rejected;  // Σ log πref (no grad); undefined for reference-free losses
  at::Tensor chosen_nll;                // mean token NLL of the chosen response (differentiable)
  at::Tensor chosen_nll_with_prompt;    // the same over prompt + response tokens (ORPO with orpo_prompt_in_nll);
                                        // undefined when not needed
};

struct LossTerms {
  at::Tensor loss;  // [B]
  std::vector<std::pair<std::string, at::Tensor>> metrics;  // [B] each, detached
};

// One paired loss type: dpo, cdpo, robust, hinge, ipo (ipo_raw), ln_dpo, bco_pair (HEAD form, no δ), simpo,
// orpo, cpo (alpha: AlphaPO reward shape), mapo (the flagged LLM adaptation), sft (= chosen_nll).
// `beta` is the resolved β of the stage. Metrics: rewards/chosen, rewards/rejected, rewards/accuracies,
// rewards/margins, logps/chosen, logps/rejected (and nll, log_odds_ratio for orpo, ...).
// Reference-based types: rewards β·ρ. Reference-free types log TRL's implicit rewards: cpo β·Σlogπ (β·r with AlphaPO),
// simpo and mapo β·avg logπ, orpo λ·avg logπ (orpo uses cfg.orpo_lambda and ignores `beta`), sft avg logπ (no β).
// logps/* are always the summed policy log-probs. Extras: nll (orpo, cpo, mapo, sft); log_odds_ratio = logσ(log_odds)
// and log_odds_chosen = log_odds (orpo, TRL's names); log_odds = m (mapo). mapo's winner term is chosen_nll, so
// `chosen` gets no gradient there. Throws std::invalid_argument for a non-paired type or a missing needed input.
LossTerms paired_loss(config::LossType type, const config::LossConfig& cfg, double beta, const PairLogps& in);

// A weighted mix of types (cfg.type with cfg.weights, default 1 each): Σ w_i · loss_i; metrics of the first type
// plus "loss/<type>" per type (the unweighted loss of that type).
LossTerms paired_loss_mix(const config::LossConfig& cfg, double beta, const PairLogps& in);

// KTO (C.10). rho = Σlogπθ(y|x) − Σlogπref(y|x) [B]; desirable [B] bool; z0 the detached, all-reduced, clamped
// reference point (a scalar). Metrics: rewards/chosen and rewards/rejected (β·ρ, NaN where the other label),
// logps/chosen, logps/rejected likewise, kl (= z0).
LossTerms kto_loss(const config::LossConfig& cfg, double beta, const at::Tensor& policy_logp,
                   const at::Tensor& ref_logp, const at::Tensor& desirable, double z0);

// KTO's z0 from mismatched pairs' log-ratios (already summed over the global batch): clamp_min(sum / count, 0);
// 0 when count is 0.
double kto_z0(double sum_of_log_ratios, double count);

// BCO (C.11). r = β·(Σlogπθ − Σlogπref); δ the running mean (after updating it with this batch); udm_weight [B] the
// density-ratio weights for undesirable examples (undefined: 1; ignored on desirable ones). Metrics as KTO's but
// with delta instead of kl.
LossTerms bco_loss(const config::LossConfig& cfg, double beta, const at::Tensor& policy_logp,
                   const at::Tensor& ref_logp, const at::Tensor& desirable, double delta,
                   const at::Tensor& udm_weight = at::Tensor());

// BCO's RunningMoments mean (n starts at 1e-24): returns the new (mean, count) after a batch of `batch_count`
// rewards with mean `batch_mean`.
std::pair<double, double> running_mean_update(double mean, double count, double batch_mean, double batch_count);

// D2O (C.12). sample_log_ratio [B, K]: Σlogπθ(y_k) − Σlogπr⁻(y_k) of the K self-generated samples;
// negative_log_ratio [B]: Σlogπθ(y_l) − Σlogπr⁺(y_l). L = −logσ((β/K)·Σ_k sample − α·negative), α = cfg.d2o_alpha.
// Metrics rewards/chosen = (β/K)·Σ_k sample, rewards/rejected = α·negative, rewards/accuracies, rewards/margins (DPO's
// with K = 1, α = β).
LossTerms d2o_loss(const config::LossConfig& cfg, double beta, const at::Tensor& sample_log_ratio,
                   const at::Tensor& negative_log_ratio);

// Stable helpers (exposed for tests): logσ(u) = −softplus(−u); log(1 − e^u) for u < 0 (log1p(−e^u) below −ln 2,
// log(−expm1 u) above; −inf at u = 0, NaN for u > 0); MaPO's g(u) = u / (e^u − 1) with g(0) = 1 (a series near 0,
// u·e^−u / (1 − e^−u) for u > 0 so that large u gives 0 and a finite gradient).
at::Tensor log_sigmoid(const at::Tensor& u);
at::Tensor log1mexp(const at::Tensor& u);
at::Tensor mapo_g(const at::Tensor& u);

}  // namespace aligntrain::objectives
