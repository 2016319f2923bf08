// Incremental decoding with a KV cache: batches of prompts of different lengths (left-padded, position ids counted
// over real tokens only, as Hugging Face's generate does), one token per step for every unfinished row, stopping
// at an end-of-sequence id or after max_new_tokens. Under tensor parallelism every rank of the group runs the same
// batch on its shard and the next token is chosen over the sharded vocabulary (parallel/sampling.h); under data
// parallelism generate_sharded() deals the requests out and gives every rank all results in request order.
//
// Sampling noise comes from one generator per request, seeded from (seed, request.stream): a request's tokens do
// not depend on which batch, rank or layout produced it (up to floating-point summation order).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "trainer/model/transformer.h"
#include "trainer/parallel/sampling.h"
#include "trainer/runtime/communicators.h"

namespace aligntrain::generation {

struct GenerateOptions {
  parallel::SamplingParams sampling;
  int64_t max_new_tokens = 128;
  int64_t batch_size = 8;   // prompts decoded together
  uint64_t seed = 0;
  std::vector<int64_t> eos_ids;  // stop tokens (not part of the output)
  int64_t pad_id = 0;            // filler for left padding (never attended to)
  int64_t vocab_limit = 0;       // > 0: ids at or above it are never produced (the tokenizer's size)
};

struct Request {
  std::vector<int32_t> prompt;  // token ids, not empty
  uint64_t stream = 0;          // keys this request's sampling noise, e.g. example index * K + sample index
};

struct Generated {
  std::vector<int32_t> tokens;  // without the end-of-sequence token
  bool stopped = false;         // ended at an end-of-sequence token (else at max_new_tokens)
};

// Called after each batch with the number of requests finished so far (on every rank).
using Progress = std::function<void(size_t done, size_t total)>;

// Decodes every request on this tensor-parallel group (all its ranks pass the same requests). Results in
// request order.
std::vector<Generated> generate(model::CausalLM& lm, runtime::Communicator& tp, const std::vector<Request>& requests,
                                const GenerateOptions& options, const at::Device& device, const Progress& progress = {});

// Data parallel: data-parallel replica d decodes requests d, d + dp, ...; every rank returns all results in request
// order. Collective over the world.
std::vector<Generated> generate_sharded(model::CausalLM& lm, runtime::Groups& groups,
                                        const std::vector<Request>& requests, const GenerateOptions& options,
                                        const at::Device& device, const Progress& progress = {});

}  // namespace aligntrain::generation
