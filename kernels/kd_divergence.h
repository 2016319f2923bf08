// Token-level KD divergences between teacher and student logits with the gradient written out, for the chunked
// distillation loss (objectives::chunked_token_loss). The spec is objectives::kd_divergence, the plain formulas of
// METHODS.md §D.1 differentiated by autograd; test/kernels/kd_divergence_test compares the two (values and
// gradients, every divergence, temperatures, fp32 and fp64, TP=2).
//
// Why a kernel: autograd of the plain formulas keeps about ten [N, V/p] tensors alive per call, and at a real
// vocabulary those dominate a distillation step's memory. This works on blocks of a few rows at a time, so its
// temporaries are a few MiB whatever N is, and writes the gradient over the student's logits.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>

namespace aligntrain::kernels {

// How a kernel combines per-row statistics over the vocabulary shards of a tensor-parallel group: an in-place max
// and an in-place sum over the group's ranks. Kernels do no communication of their own; the caller adapts its
// communicator (parallel::shard_reduce). Empty functions: one rank, nothing to combine.
struct ShardReduce {
  std::function<void(at::Tensor&)> max, sum;
};

// p = softmax(teacher/τ), q = softmax(student/τ).
enum class Divergence {
  forward_kl,  // Σ p (log p − log q)
  reverse_kl,  // Σ q (log q − log p)
  jsd,         // β·KL(p‖m) + (1−β)·KL(q‖m), m = β·p + (1−β)·q; TRL GKD: β = 0 is exactly forward KL, β = 1 reverse KL
  tvd,         // ½ Σ |p − q|
};

// D_n(p ‖ q) for every position n of teacher_logits and student_logits [N, V/p] (this rank's vocabulary columns;
// `shards` combines the row statistics over the group), returned as [N] in the compute dtype (fp64 for fp64 students, else fp32).
// jsd_beta in [0, 1] (read for jsd only), temperature > 0. No autograd: the teacher is a constant.
// When grad_weights [N] is defined, student_logits (contiguous, already in the compute dtype, the caller's own
// buffer) is overwritten with ∂(Σ_n grad_weights[n]·D_n)/∂student_logits, i.e. with q ⊙ (G − ⟨q, G⟩)·w/τ where
// G = ∂D/∂q; undefined leaves it untouched. block_rows ≤ 0 picks blocks of about 2 MiB per [rows, V/p] tensor.
// Every rank of the group must call it with the same N and block_rows.
at::Tensor kd_divergence_rows(const at::Tensor& teacher_logits, at::Tensor& student_logits,
                              const at::Tensor& grad_weights, Divergence divergence, double jsd_beta,
                              double temperature, const ShardReduce& shards, int64_t block_rows = 0);

}  // namespace aligntrain::kernels
