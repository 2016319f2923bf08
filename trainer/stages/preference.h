// `kind: preference`: the DPO family on paired data (METHODS.md §C; losses in trainer/objectives/preference.h).
//
// Each micro-batch's chosen and rejected responses go through the policy in ONE forward (chosen rows, then
// rejected rows), with token log-probs taken over the vocabulary-parallel LM head in chunks (no full-vocabulary
// logits). The reference model is frozen and sharded over the same TP group like the policy, and is either run
// live on the same batch (no gradients) or, with `reference: {model: NAME, precompute: true}`, run once over the
// whole train and eval files before training; its per-example log-probs are then cached on disk under a
// fingerprint of the reference weights, tokenizer, data file contents, max_length, truncation and chat template,
// reused by later runs and resumes, and the reference model is freed before training starts.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "config/schema.h"
#include "data/encode.h"
#include "data/tokenizer.h"
#include "trainer/model/transformer.h"
#include "trainer/runtime/communicators.h"
#include "trainer/stages/stage_env.h"

namespace aligntrain::stages {

struct PairData {
  std::string path;
  std::vector<data::Encoded> chosen, rejected;
  std::vector<int64_t> lines;  // 1-based line of each pair in the file
  data::EncodeStats stats;
};

// Reads and tokenises a preference file. Malformed lines (missing or empty chosen/rejected, chosen identical to
// rejected) are DataErrors naming file:line:field unless data.skip_invalid; a pair is dropped (and counted) when
// either response is dropped by truncation.
PairData load_pair_data(const std::string& path, const config::StageConfig& stage, const data::Tokenizer& tokenizer,
                        const std::string& chat_template, const std::string& model_dir);

// Per-example sequence log-probs of pairs `index` under a model, from one concatenated forward.
struct PairSeqLogps {
  at::Tensor chosen, rejected;          // Σ log π over response tokens, fp32 [B]
  at::Tensor chosen_len, rejected_len;  // response tokens [B]
  at::Tensor chosen_full;               // Σ log π over prompt + response tokens (all but the first) [B]
  at::Tensor chosen_full_len;
  int64_t tokens = 0;                   // non-padding tokens in the forward
};
PairSeqLogps pair_logps(model::CausalLM& lm, runtime::Communicator& tp, const at::Device& device, const PairData& data,
                        const std::vector<int64_t>& index, int32_t pad_id);

StageResult run_preference(StageEnv& env, const config::StageConfig& stage);

}  // namespace aligntrain::stages
