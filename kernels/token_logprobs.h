// Token log-probabilities through the LM head without full-vocabulary logits: the logits of a chunk of rows exist
// one chunk at a time, chunks sized by a memory budget in bytes, and only rows that have a label are computed. The
// spec is log_softmax(hidden · Wᵀ) gathered at the labels (model::token_logprobs is the single-rank reference;
// test/kernels/token_logprobs_test compares values and gradients, one chunk against many, and TP=2).
//
// Why a kernel: autograd of the plain formula keeps the [N, V] fp32 log-softmax for the backward, which at a
// 128k-256k vocabulary is most of a training step's memory (bench/RESULTS.md, "logits path").
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "kernels/kd_divergence.h"  // ShardReduce

namespace aligntrain::kernels {

// The bytes one [rows, vocabulary shard] fp32 logits chunk may take (default 128 MiB); set once per process from
// the recipe (parallel.logits_mb).
int64_t logits_budget_bytes();
void set_logits_budget_bytes(int64_t bytes);

// Rows per chunk so that a [rows, vocab_local] fp32 block fits `budget_bytes` (at least 1).
int64_t logits_chunk_rows(int64_t vocab_local, int64_t budget_bytes = logits_budget_bytes());

// log p(label) of every row of `logits` [n, V/p] (this rank's vocabulary columns [vocab_start, vocab_start + V/p);
// fp32 or fp64, contiguous) for labels [n] (global ids; −100: no label, 0 returned); `shards` combines row
// statistics over the group. [n] in the logits' dtype. When lse is non-null it receives log Σ_v exp(z_v) [n]. When
// grad_weights [n] is defined, `logits` is overwritten with ∂(Σ_i grad_weights[i]·lp_i)/∂logits =
// w ⊙ (onehot(label) − softmax). Temporaries are blocks of a few MiB.
at::Tensor token_logprob_rows(at::Tensor& logits, const at::Tensor& labels, int64_t vocab_start,
                              const at::Tensor& grad_weights, const ShardReduce& shards, at::Tensor* lse = nullptr);

// log p(labels[i] | hidden[i]) for hidden [N, H] (replicated over the group) and this rank's LM head rows
// weight [V/p, H], labels [N] (−100: no label → 0): [N] fp32, differentiable with respect to hidden and weight.
// Rows without a label are never computed. Logits are formed `chunk_rows` rows at a time (≤ 0: logits_chunk_rows);
// when every labelled row fits one chunk its block is kept for the backward, otherwise only each row's logsumexp is
// kept and the backward forms each chunk's logits again (one more LM-head product instead of [N, V] floats). The
// gradient with respect to hidden is this rank's share: on a group, pass hidden through a copy-to-group mapping
// (parallel::copy_to_group) so that its backward sums the shares. A leaf weight (a parameter) receives its gradient
// straight into .grad in the backward (allocated when undefined), so no weight-sized gradient is handed to autograd.
at::Tensor token_logprobs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                          int64_t vocab_start, const ShardReduce& shards, int64_t chunk_rows = 0);

}  // namespace aligntrain::kernels
