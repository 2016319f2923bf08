// Next-token choice over logits sharded along the vocabulary ([B, V/p] on each of the p ranks of a tensor-parallel
// group), without gathering the full vocabulary: greedy is an all-gathered (max, id) pair per rank; sampling is the
// Gumbel-max trick with noise indexed by global token id, so every layout (TP = 1, 2, ...) draws the same token from
// the same noise; top-k and top-p merge each rank's best candidates, doubling their number until the top-p mass is
// covered.
//
// The filters follow Hugging Face's logits warpers, applied in their order: temperature, then top-k, then top-p
// over the top-k renormalised distribution; top-p keeps every token whose higher-ranked tokens hold less than
// `top_p` of the mass (so at least the best token).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "trainer/runtime/communicator.h"

namespace aligntrain::parallel {

struct SamplingParams {
  double temperature = 1.0;  // 0: greedy
  double top_p = 1.0;        // 1: off
  int64_t top_k = 0;         // 0: off
};

// Token ids [B] (global vocabulary ids, int64, on CPU) from this rank's logits [B, V/p] (any dtype; math in fp32).
// `uniform` [B, V] holds uniform [0, 1) noise over the full vocabulary, identical on every rank of the group (the
// caller draws it from per-row seeded generators); unused when greedy. Ids >= `vocab_limit` (when > 0: the
// tokenizer's size, below a padded embedding's) are never chosen.
at::Tensor sample_tokens(const at::Tensor& local_logits, const SamplingParams& params, const at::Tensor& uniform,
                         int64_t vocab_limit, runtime::Communicator& group);

}  // namespace aligntrain::parallel
