// Softmax-based quantities over logits sharded along the vocabulary ([.., V/p] on each of the p ranks of a
// tensor-parallel group, rank r holding ids [r·V/p, (r+1)·V/p)), without ever gathering the full vocabulary:
// a max and a sum of exponentials are all-reduced (Megatron's vocab-parallel cross-entropy, generalised).
// Everything is computed in fp32 and is differentiable with respect to the local logits. A group of one gives
// the plain single-rank computation, which is the reference the sharded results are tested against.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "kernels/kd_divergence.h"
#include "trainer/model/transformer.h"
#include "trainer/runtime/communicator.h"

namespace aligntrain::parallel {

// A kernel's shard reduction (kernels::ShardReduce) over `group`: all-reduce max and sum (nothing for one rank).
kernels::ShardReduce shard_reduce(runtime::Communicator& group);

// log softmax of the full vocabulary, this rank's columns: [N, V/p] fp32.
at::Tensor log_softmax(const at::Tensor& local_logits, runtime::Communicator& group);

// log p(label) for labels [N] (global ids; model::kIgnoreIndex gives 0): [N] fp32.
at::Tensor token_logprobs(const at::Tensor& local_logits, const at::Tensor& labels, runtime::Communicator& group);

// Per-position divergences between teacher logits p and student logits q (both [N, V/p]), summed over the full
// vocabulary: [N] fp32.
at::Tensor forward_kl(const at::Tensor& p_logits, const at::Tensor& q_logits, runtime::Communicator& group);  // KL(p‖q)
at::Tensor reverse_kl(const at::Tensor& p_logits, const at::Tensor& q_logits, runtime::Communicator& group);  // KL(q‖p)
// β·KL(p‖m) + (1−β)·KL(q‖m), m = β·p + (1−β)·q (TRL GKD's generalised JSD).
at::Tensor jsd(const at::Tensor& p_logits, const at::Tensor& q_logits, double beta, runtime::Communicator& group);

struct TopK {
  at::Tensor values;   // [N, k] the k largest logits over the full vocabulary, descending
  at::Tensor indices;  // [N, k] their global vocabulary ids (int64)
};
// Not differentiable. k must not exceed V/p.
TopK top_k(const at::Tensor& local_logits, int64_t k, runtime::Communicator& group);

// Token log-probs from final hidden states through the model's (sharded) LM head: [B, T] fp32 (labels as in
// model/logprobs.h), by kernels::token_logprobs — only labelled positions, logits `chunk_positions` rows at a time
// (≤ 0: the logits budget, kernels::logits_chunk_rows).
at::Tensor token_logprobs(model::CausalLM& model, const at::Tensor& hidden, const at::Tensor& labels,
                          runtime::Communicator& group, int64_t chunk_positions = 0);

}  // namespace aligntrain::parallel
