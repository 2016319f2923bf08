// Distillation objectives over logits sharded along the vocabulary (METHODS.md §A, §B, §D.1): token-level
// divergences for KD (forward/reverse KL, generalised JSD, total variation), DCKD's top-k teacher tables and its
// k+1-bin KL, ADPA's advantage tables and term, AlignDistil's adaptive logit extrapolation, and a chunked token loss
// that never holds more than one chunk of student (and teacher) logits.
//
// Layout: every logits argument is this rank's [N, V/p] columns of a tensor-parallel group of p ranks (rank r holds
// ids [r·V/p, (r+1)·V/p)); full-vocabulary sums are all-reduced (trainer/parallel/mappings.h), the vocabulary is
// never gathered. A group of one (runtime::SelfCommunicator) is the unsharded reference. Results are replicated.
//
// Precision: fp64 inputs are computed in fp64, every other dtype in fp32. Softmaxes use a global logsumexp and
// never take log(0). Every per-position result is differentiable with respect to the student logits; teacher
// logits and tables are detached (no gradient ever reaches a teacher). Inputs are never modified.
// Bad shapes or options throw std::invalid_argument naming the function and the argument.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>

#include "kernels/kd_divergence.h"
#include "trainer/model/projection.h"
#include "trainer/runtime/communicator.h"

namespace aligntrain::objectives {

// ---- Token-level KD divergences (§D.1), p = softmax(teacher/τ), q = softmax(student/τ) -----------------------------
// forward_kl Σ p (log p − log q), reverse_kl Σ q (log q − log p), jsd β·KL(p‖m) + (1−β)·KL(q‖m) with
// m = β·p + (1−β)·q (TRL GKD: β = 0 is exactly forward KL, β = 1 reverse KL), tvd ½ Σ |p − q|.
using Divergence = kernels::Divergence;

// [N] per-position divergence over the full vocabulary. jsd_beta in [0, 1] (read for jsd only), temperature > 0
// divides both teacher and student logits.
at::Tensor kd_divergence(const at::Tensor& teacher_logits, const at::Tensor& student_logits, Divergence divergence,
                         double jsd_beta, double temperature, runtime::Communicator& group);

// ---- DCKD (§A.2, §A.3) ------------------------------------------------------------------------------------------
// A teacher's top-k table at temperature 1 (what ADPA precomputes and stores per response token).
struct TeacherTable {
  at::Tensor indices;    // [N, k] int64 global vocabulary ids, by descending probability
  at::Tensor probs;      // [N, k] p_T(id)
  at::Tensor remaining;  // [N]    1 − Σ probs
};
// From sharded teacher logits: parallel::top_k plus the global logsumexp (no vocabulary gather). k ≤ V/p.
TeacherTable teacher_table(const at::Tensor& teacher_logits, int64_t k, runtime::Communicator& group);

// [N] DCKD's per-token KL on k+1 bins, as coded: teacher bins (probs, remaining) and student bins (q at the ids,
// q_rest = 1 − Σ q), both clamped to [1e-8, 1 − 1e-8], then Σ_b p_b (log p_b − log max(q_b, 1e-7)). Ids ≥
// student_vocab are out of the student's vocabulary: their teacher mass moves into the rest bin, and both sides'
// named bins are 0 before the clamp. The student softmax runs over the full logits width (student_vocab ≤ V).
at::Tensor dckd_kl(const at::Tensor& student_logits, const TeacherTable& table, int64_t student_vocab,
                   runtime::Communicator& group);

// ---- ADPA (§A.4) ------------------------------------------------------------------------------------------------
struct AdvantageTable {
  at::Tensor indices;     // [N, k] int64 global ids (the DPO teacher's top-k), by descending advantage
  at::Tensor advantages;  // [N, k] A(a) = log p̃_dpo(a) − log p̃_ref(a)
};
// p̃_dpo = max(P_dpo, 1e-7); p̃_ref = max(P_ref, 1e-7) where the id is in the ref table, else floor_t =
// max(min_a P_dpo(a), 1e-7) (the DPO table's floor for both, as coded). The tables' k may differ; N must match.
AdvantageTable adpa_advantages(const TeacherTable& dpo, const TeacherTable& ref);

struct AdpaOptions {
  // true (as released): ℓ = −[Σ_a clamp(q_a)·clamp(A_a) + clamp(q_rest)·clamp(A_rest)], clamp to [1e-8, 1 − 1e-8],
  //   where A_rest is the sum of the out-of-vocabulary advantages (0 with a shared tokenizer, so clamp → 1e-8).
  // false (paper form): ℓ = −Σ_a q_a·scale·A_a.
  bool clamp_targets = true;
  double scale = 1.0;  // β of the paper form; must be 1 when clamp_targets (the released code has no β)
};
// [N] per-token ℓ_t; the loss term is their token mean. Ids ≥ V (the full logits width) count as out of vocabulary.
at::Tensor adpa_term(const at::Tensor& student_logits, const AdvantageTable& table, const AdpaOptions& options,
                     runtime::Communicator& group);

// ---- AlignDistil (§B.2) -----------------------------------------------------------------------------------------
enum class AlignDistilMode {
  // w_t = β₂·D_t + 1e-3 with D_t = Σ|p_dpo − p_ref|; z* = z_dpo + w_t(z_dpo − z_ref); ℓ = (β/w_t)·KL(π_θ‖π*)
  aligndistil,
  // w = β/β₂; z* = w·z_dpo + (1−w)·z_ref; ℓ = β₂·KL(π_θ‖π*)
  theorem1,
  // z* = z_dpo + (β/β₂)(z_dpo − z_ref); ℓ = β₂·KL(π_θ‖π*)
  theorem1_contrast,
  // the released code: the adaptive w_t (as in aligndistil) as the theorem1 interpolation weight,
  // z* = w_t·z_dpo + (1−w_t)·z_ref, with aligndistil's coefficient: ℓ = (β/w_t)·KL(π_θ‖π*)
  theorem1_adaptive,
};
struct AlignDistilOptions {
  AlignDistilMode mode = AlignDistilMode::aligndistil;
  double beta = 0.1;
  double beta2 = 10.0;
  // τ > 0 divides the synthetic teacher's logits only: π* = softmax(z*/τ) (the off-policy trainer; the on-policy
  // one also divides the student's, identical at the default τ = 1).
  double temperature = 1.0;
};
// [N] per-position ℓ_t (the stage applies the seq-token mean). ref_logits are π_rdpo's (or π_ref's for theorem1).
at::Tensor aligndistil(const at::Tensor& student_logits, const at::Tensor& dpo_logits, const at::Tensor& ref_logits,
                       const AlignDistilOptions& options, runtime::Communicator& group);

// ---- Chunked fused token loss -----------------------------------------------------------------------------------
// The per-position term of one chunk: student logits [n, V/p] (fp32, or fp64 for fp64 inputs) of positions
// [start, start + n) → [n]. The caller computes the teacher's logits of the same positions inside it, so teacher and
// student logits exist for one chunk at a time. It must not keep references to its argument. Differentiated by
// autograd on the chunk's small graph.
using ChunkTerm = std::function<at::Tensor(const at::Tensor& student_logits_chunk, int64_t start, int64_t n)>;
// A term that differentiates itself (e.g. kernels::kd_divergence_rows): returns [n] for the chunk's student logits,
// and when grad_weights [n] is defined overwrites them with ∂(Σ grad_weights·term)/∂logits, or sets them to an
// undefined tensor when the term does not depend on the student. No autograd graph, no copy of the logits.
using ChunkGradTerm = std::function<at::Tensor(at::Tensor& student_logits_chunk, const at::Tensor& grad_weights,
                                               int64_t start, int64_t n)>;

// Σ_n weights[n]·term(n) (a scalar) with student logits = hidden·Wᵀ computed chunk by chunk (chunk_positions ≤ 0:
// kernels::logits_chunk_rows, the logits budget; the product runs in the weight's dtype and is cast to fp32, as in
// kernels::token_logprobs). hidden [N, H] are the replicated final hidden states, weight [V/p, H] this rank's
// LM head rows (bias-free; a tied head's weight is the embedding parameter itself), weights [N] per-position factors
// (e.g. mask / token count; not differentiated). Differentiable with respect to hidden and weight: each chunk's
// d(Σ w·term)/d(logits) is taken at once and folded into grad_hidden (all-reduced over the group) and grad_W
// (local); the backward scales them by the incoming gradient. With neither hidden nor weight requiring grad (or
// grad mode off) no gradient work is done. Every rank must call it with the same N and chunking.
// weight_grad_into_param: the weight's gradient is added straight into weight.grad during the forward (allocated
// when undefined) instead of held until the backward, which then must receive gradient exactly 1 (the result is
// back-propagated as it is) and returns none for the weight.
at::Tensor chunked_token_loss(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& weights,
                              const ChunkGradTerm& term, runtime::Communicator& group, int64_t chunk_positions = 0,
                              bool weight_grad_into_param = false);
at::Tensor chunked_token_loss(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& weights,
                              const ChunkTerm& term, runtime::Communicator& group, int64_t chunk_positions = 0);
at::Tensor chunked_token_loss(const at::Tensor& hidden, model::LmHead& head, const at::Tensor& weights,
                              const ChunkTerm& term, runtime::Communicator& group, int64_t chunk_positions = 0);
at::Tensor chunked_token_loss(const at::Tensor& hidden, model::LmHead& head, const at::Tensor& weights,
                              const ChunkGradTerm& term, runtime::Communicator& group, int64_t chunk_positions = 0);

// Σ log p(label) over the labelled positions of hidden [..., H] / labels [...] (−100: none) through the (sharded)
// LM head: a scalar fp32, the gradient formed chunk by chunk during the forward (chunked_token_loss with
// kernels::token_logprob_rows), so no logits are kept or formed again. An SFT loss is −this / tokens.
// loss_scale ≠ 0 returns loss_scale · Σ log p instead, a loss to back-propagate as it is: the LM head's weight
// gradient then goes straight into its .grad during the forward (see chunked_token_loss), so no weight-sized
// gradient is held while the rest of the model back-propagates.
at::Tensor token_logprob_sum(const at::Tensor& hidden, model::LmHead& head, const at::Tensor& labels,
                             runtime::Communicator& group, int64_t chunk_positions = 0, double loss_scale = 0.0);

}  // namespace aligntrain::objectives
