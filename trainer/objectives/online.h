// Losses of the online methods on the policy's own samples (METHODS.md §G and §D.2): GRPO and RLOO as TRL 1.16
// computes them, and f-DPG as the paper's released code (naver/disco, FDivergenceLoss) does. Pure functions of
// rewards and log-probs; the online stage samples, scores and reduces over ranks.
//
// Shapes: a step's samples are P prompts × G samples, G consecutive rows per prompt ([P·G] rewards); per-token
// tensors are [B, T] over the completion tokens with a 0/1 mask m (tokens after EOS masked).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

namespace aligntrain::objectives {

// ---- advantages ---------------------------------------------------------------------------------------------------

// GRPO's `scale_rewards`: divide r − mean_group(r) by (std + 1e-4) with the group's or the batch's Bessel-corrected
// std, or not at all (Dr. GRPO).
enum class RewardScaling { kGroup, kBatch, kNone };

// A_i = r_i − mean_group(r), scaled as `scaling` says. `rewards` [P·G], `group_size` G ≥ 1 (std of one value: 0).
at::Tensor grpo_advantages(const at::Tensor& rewards, int64_t group_size, RewardScaling scaling);

// RLOO's reward with the KL folded in: r_i − β·Σ_t m_t (ℓ^old_t − ℓ^ref_t) (first-order estimate, per sequence).
at::Tensor rloo_kl_rewards(const at::Tensor& rewards, const at::Tensor& old_logps, const at::Tensor& ref_logps,
                           const at::Tensor& mask, double beta);

// A_i = r_i − (Σ_group r − r_i)/(G − 1) (0 when G = 1); with `normalize`, (A − mean(A)) / (std(A) + 1e-4) over the
// batch.
at::Tensor rloo_advantages(const at::Tensor& rewards, int64_t group_size, bool normalize);

// ---- clipped policy-gradient losses -------------------------------------------------------------------------------

struct ClipRange {
  double low = 0.2;   // ρ is clipped to [1 − low, 1 + high]
  double high = 0.2;
};

// GRPO's `importance_sampling_level`: ρ per token, or one ρ per sequence from the masked mean log-ratio.
enum class ImportanceLevel { kToken, kSequence };

struct GrpoTokenTerms {
  at::Tensor loss;     // [B, T] L_t = −min(ρ_t A, clip(ρ_t) A) + β·KL_t (not masked)
  at::Tensor kl;       // [B, T] k3 estimate exp(ℓ^ref − ℓ) − (ℓ^ref − ℓ) − 1 (undefined when β = 0)
  at::Tensor clipped;  // [B, T] bool: the clip is active (ρ < 1 − low with A < 0, or ρ > 1 + high with A > 0)
};

// `logps` [B, T] carries the gradient; `old_logps` the sampling policy's (detached; pass logps.detach() when each
// batch of samples is used for one update); `ref_logps` the reference's (needed when beta ≠ 0); `advantages` [B].
GrpoTokenTerms grpo_token_loss(const at::Tensor& logps, const at::Tensor& old_logps, const at::Tensor& ref_logps,
                               const at::Tensor& advantages, const at::Tensor& mask, ClipRange clip, double beta,
                               ImportanceLevel level);

// GRPO's `loss_type`. aligntrain defines each over the global batch (every micro-batch and data-parallel rank), so
// that summing the per-part values gives the formula for the whole batch:
//   grpo     mean over sequences of Σ_t m L / Σ_t m
//   bnpo     Σ m L / Σ m (TRL: over the local batch; here the global one, so it equals dapo)
//   dapo     Σ m L / (completion tokens in the global batch)
//   dr_grpo  Σ m L / (sequences in the global batch × max completion length)
enum class GrpoAggregation { kGrpo, kBnpo, kDapo, kDrGrpo };

struct GlobalBatch {
  int64_t sequences = 0;             // P·G over the whole step
  double completion_tokens = 0;      // Σ m over the whole step
  int64_t max_completion_length = 0; // generation's max_new_tokens (dr_grpo)
};

// This part's share of the aggregated loss (a 0-dim tensor).
at::Tensor aggregate_grpo_loss(const at::Tensor& token_loss, const at::Tensor& mask, GrpoAggregation aggregation,
                               const GlobalBatch& batch);

struct RlooSequenceTerms {
  at::Tensor loss;     // [B] −min(ρ_i A_i, clip(ρ_i) A_i), ρ_i = exp(Σ_t m ℓ − Σ_t m ℓ^old)
  at::Tensor clipped;  // [B] bool
};

// RLOO's sequence-level clipped loss; the stage averages over the global batch's sequences.
RlooSequenceTerms rloo_sequence_loss(const at::Tensor& logps, const at::Tensor& old_logps, const at::Tensor& advantages,
                                    const at::Tensor& mask, ClipRange clip);

// ---- f-DPG --------------------------------------------------------------------------------------------------------

enum class FDivergence { kForwardKl, kReverseKl, kJensenShannon, kTotalVariation };

// f′ as a function of log t (disco's f_prime): forward KL −1/t, reverse KL log t + 1, Jensen–Shannon
// log 2 − softplus(−log t), total variation ½·sign(log t).
at::Tensor fdpg_f_prime(const at::Tensor& log_t, FDivergence divergence);

// The pseudo-reward R = −f′(t), log t = log π(x) − (log P(x) − log Z) (π detached). `policy_logps` [B] sequence
// log-probs of the samples, `target_logps` [B] log P(x) of the unnormalised target.
at::Tensor fdpg_pseudo_rewards(const at::Tensor& policy_logps, const at::Tensor& target_logps, double log_z,
                               FDivergence divergence);

// Per-sample loss (π(x)/q(x))_detached · (−A) · log π(x), [B]; `policy_logps` carries the gradient, `proposal_logps`
// is the sampling policy's. The loss is their mean over the global batch.
at::Tensor fdpg_sample_loss(const at::Tensor& policy_logps, const at::Tensor& proposal_logps,
                            const at::Tensor& advantages);

// disco's WindowedMovingAverage baseline: the mean of the last `window` pseudo-rewards seen. advantages() subtracts
// the value before this batch (none at first: A = R), then adds the batch to the window, as FDivergenceLoss does.
class WindowedBaseline {
 public:
  explicit WindowedBaseline(int64_t window = 1024);
  // A = R − value (R itself before any value), then R enters the window. `rewards` [B] (fp64 on the host).
  at::Tensor advantages(const at::Tensor& rewards);
  std::optional<double> value() const { return value_; }
  // The window's contents, oldest first (checkpointed), and their restore.
  std::vector<double> state() const { return {buffer_.begin(), buffer_.end()}; }
  void load_state(const std::vector<double>& values);

 private:
  int64_t window_;
  std::deque<double> buffer_;
  std::optional<double> value_;
};

}  // namespace aligntrain::objectives
