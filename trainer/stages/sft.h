// Supervised fine-tuning: token-mean negative log-likelihood of the completion tokens of the global batch
// (every token with data.train_on_prompt), optionally with packing.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "config/schema.h"
#include "data/collate.h"
#include "data/encode.h"
#include "data/tokenizer.h"
#include "trainer/model/transformer.h"
#include "trainer/runtime/communicators.h"
#include "trainer/stages/objective.h"
#include "trainer/stages/stage_env.h"

namespace aligntrain::stages {

struct SftData {
  std::string path;
  std::vector<data::Encoded> examples;
  std::vector<int64_t> lengths;
  data::EncodeStats stats;
  data::ReadReport report;
};

// Reads and tokenises an SFT file (prompt/completion or messages). Throws DataError for malformed lines (unless
// data.skip_invalid), an empty file, or a file whose every example is dropped; logs skipped and truncated counts.
SftData load_sft_data(const std::string& path, const config::StageConfig& stage, const data::Tokenizer& tokenizer,
                      const std::string& chat_template, const std::string& model_dir);

// Sum of −log p over the loss tokens of a collated batch (a differentiable scalar), under TP through the group.
at::Tensor sum_nll(model::CausalLM& lm, const data::Batch& batch, runtime::Communicator& tp, const at::Device& device);

// Token-mean NLL of a whole data set (no gradients), examples dealt round-robin over the DP group.
struct EvalLoss {
  double loss = 0;
  int64_t tokens = 0;
};
EvalLoss evaluate_sft(model::CausalLM& lm, runtime::Groups& groups, const at::Device& device, const SftData& data,
                      int64_t micro, const data::CollateOptions& collate);

class SftObjective : public TrainObjective {
 public:
  SftObjective(model::CausalLM& lm, runtime::Groups& groups, at::Device device, const SftData& data,
               data::CollateOptions collate, bool packing);

  int64_t num_examples() const override { return static_cast<int64_t>(data_.examples.size()); }
  const std::vector<int64_t>& lengths() const override { return data_.lengths; }
  bool packing() const override { return packing_; }
  void begin_step(const data::StepRows& step) override;
  void micro_step(const std::vector<std::vector<int64_t>>& rows) override;
  StepMetrics end_step(bool report) override;
  int64_t step_tokens() const override { return step_tokens_; }

 private:
  model::CausalLM& lm_;
  runtime::Groups& groups_;
  at::Device device_;
  const SftData& data_;
  data::CollateOptions collate_;
  bool packing_;
  int64_t loss_tokens_ = 0, step_tokens_ = 0;
  at::Tensor nll_sum_;  // this rank's Σ NLL of the step, fp64 on the device (read only when reported)
};

// kind: sft — the stage runner.
StageResult run_sft(StageEnv& env, const config::StageConfig& stage);

}  // namespace aligntrain::stages
