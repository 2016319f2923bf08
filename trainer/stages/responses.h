// What the reference-based stages share (preference, unpaired, negatives): examples with a fixed number of
// tokenised responses each, their sequence log-probs from one forward, the frozen reference model (live, or
// precomputed once and cached on disk under a fingerprint), per-example loss metrics averaged over the global
// batch, and the TrainObjective that ties them to the training loop.
//
//   preference   responses (chosen, rejected)
//   unpaired     responses (completion, a mismatched completion for KTO's reference point: the completion of the
//                previous example in file order, after the same prompt)
//   negatives    responses (rejected, sample 1, ..., sample K)
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/schema.h"
#include "data/encode.h"
#include "trainer/model/transformer.h"
#include "trainer/objectives/preference.h"
#include "trainer/runtime/communicators.h"
#include "trainer/stages/models.h"
#include "trainer/stages/objective.h"
#include "trainer/stages/stage_env.h"

namespace aligntrain::stages {

struct ResponseSet {
  std::string path;
  int64_t width = 0;                  // responses per example
  std::vector<data::Encoded> items;   // example-major: items[i * width + r]
  std::vector<int64_t> lines;         // 1-based line of each example in its file
  std::vector<uint8_t> desirable;     // unpaired: the label of each example
  data::EncodeStats stats;

  int64_t size() const { return static_cast<int64_t>(lines.size()); }
  const data::Encoded& at(int64_t i, int64_t r) const { return items.at(static_cast<size_t>(i * width + r)); }
  // Response r of examples `index`, one collate row each.
  std::vector<std::vector<const data::Encoded*>> rows(const std::vector<int64_t>& index, int64_t r) const {
    std::vector<std::vector<const data::Encoded*>> out;
    for (int64_t i : index) out.push_back({&at(i, r)});
    return out;
  }
};

// Sequence log-probs of responses `columns` of examples `index`, from one forward over B·C rows.
struct SeqLogps {
  at::Tensor sum, len;          // [B, C] fp64: Σ log π over response tokens, response token count
  at::Tensor full_sum, full_len;  // [B] of column 0 over prompt + response tokens (all but the first)
  int64_t tokens = 0;           // non-padding tokens of the forward
};
SeqLogps sequence_logps(model::CausalLM& lm, runtime::Communicator& tp, const at::Device& device,
                        const ResponseSet& set, const std::vector<int64_t>& index, const std::vector<int64_t>& columns,
                        int32_t pad_id);

// Reference log-probs [B, C] (fp64, on the device) of the same rows; never differentiable.
using ReferenceFn = std::function<at::Tensor(const ResponseSet&, const std::vector<int64_t>&, const std::vector<int64_t>&)>;

struct Reference {
  ReferenceFn train, eval;           // empty when the stage has no reference
  std::optional<LoadedModel> live;   // the model, when it stays resident
  // `reference: base` live: the policy itself with its adapters off; train/eval are set once the policy is loaded
  // (policy_base_reference).
  bool policy_base = false;
};

// The reference of `reference: base`: sequence log-probs of the LoRA policy `lm` with its adapters off.
ReferenceFn policy_base_reference(model::CausalLM& lm, runtime::Groups& groups, const at::Device& device, int32_t pad);

// The stage's reference: none, live, or precomputed (cached under <output_dir>/cache/reference-<key>.safetensors,
// recomputed when the key — reference weights, tokenizer, data file contents, max_length, truncation, template,
// dtype, TP degree, response layout — differs, and freed before training).
Reference make_reference(StageEnv& env, const config::StageConfig& stage, const ModelSource& policy,
                         const ResponseSet& train, const ResponseSet* eval, int32_t pad_id);

// Per-example sums of the loss and metrics; metrics may be NaN for examples they do not apply to (KTO, BCO) and
// are averaged over the examples where they are defined.
struct MetricSums {
  std::vector<std::string> keys;
  std::vector<double> sums, counts;
  void add(const objectives::LossTerms& terms);
  // All-reduced over the group; "loss" divided by `examples`, the others by their counts.
  StepMetrics mean(runtime::Communicator& dp, const at::Device& device, double examples, const std::string& prefix) const;
};

// The loss of a micro-batch from the policy's and reference's log-probs of the responses in `columns`.
struct LossInput {
  const ResponseSet& set;
  const std::vector<int64_t>& index;
  const SeqLogps& policy;
  const at::Tensor& reference;  // [B, C]; undefined without a reference
  bool training;
};
using LossFn = std::function<objectives::LossTerms(const LossInput&)>;

struct ResponseLoss {
  std::vector<int64_t> train_columns, eval_columns;  // responses the loss reads, in training and evaluation
  LossFn loss;
  // Optional: before each training step, with the policy and this rank's micro-batches of the step (e.g. KTO's z0).
  std::function<void(model::CausalLM& policy, const std::vector<std::vector<std::vector<int64_t>>>&)> before_step;
  std::function<nlohmann::json()> state;                  // optional: objective state for checkpoints
  std::function<void(const nlohmann::json&)> load_state;  // optional
};

// Trains `policy` on `train` with `loss`; evaluates on `eval` at the start, every eval.every_steps and at the end;
// saves the model. The shared body of the reference-based stages.
StageResult run_response_stage(StageEnv& env, const config::StageConfig& stage, const ModelSource& policy,
                               const ResponseSet& train, const ResponseSet* eval, Reference& reference,
                               ResponseLoss& loss, int32_t pad_id);



}  // namespace aligntrain::stages
