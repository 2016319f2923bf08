// Token log-probabilities from final hidden states without materialising full-vocabulary logits for the whole
// batch: the LM head and an fp32 log-softmax run over chunks of positions. This is the single-rank reference;
// trainer/parallel/ has the vocabulary-parallel version.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "trainer/model/transformer.h"

namespace aligntrain::model {

inline constexpr int64_t kIgnoreIndex = -100;

// log p(labels[b, t] | position t) for hidden [B, T, H] and labels [B, T] (kIgnoreIndex → 0), fp32 [B, T].
// Labels are already shifted: labels[b, t] is the token that position t predicts. Differentiable with respect to
// the hidden states and the LM head's weight through one fused autograd function: the forward keeps one fp32
// log-softmax block per chunk, the backward turns each block into its gradient in place, so no other
// vocabulary-sized tensor is allocated (bench/RESULTS.md). With nothing to differentiate (grad mode off, or neither
// input requiring grad) only positions with a label are computed and no block is kept. chunk_positions 0 picks
// chunks of about 32 MiB of logits, which the allocator reuses instead of mapping fresh pages each step.
at::Tensor token_logprobs(CausalLM& model, const at::Tensor& hidden, const at::Tensor& labels,
                          int64_t chunk_positions = 0);

// The same from hidden states [N, H] and an LM head weight [V, H] directly: [N] fp32.
at::Tensor fused_token_logprobs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                int64_t chunk_positions);

// Positions per chunk so that one fp32 [chunk, vocab] block is about 32 MiB (glibc's largest mmap threshold).
int64_t default_chunk_positions(int64_t vocab);

// Shifted labels for causal LM: labels[:, t] = input_ids[:, t + 1] where loss_mask[:, t + 1] is true, else
// kIgnoreIndex; the last position is always ignored.
at::Tensor shift_labels(const at::Tensor& input_ids, const at::Tensor& loss_mask);

}  // namespace aligntrain::model
