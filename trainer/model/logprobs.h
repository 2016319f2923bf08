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
// Labels are already shifted: labels[b, t] is the token that position t predicts. Differentiable.
at::Tensor token_logprobs(CausalLM& model, const at::Tensor& hidden, const at::Tensor& labels,
                          int64_t chunk_positions = 1024);

// Shifted labels for causal LM: labels[:, t] = input_ids[:, t + 1] where loss_mask[:, t + 1] is true, else
// kIgnoreIndex; the last position is always ignored.
at::Tensor shift_labels(const at::Tensor& input_ids, const at::Tensor& loss_mask);

}  // namespace aligntrain::model
