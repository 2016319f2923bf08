// What every stage runner receives from the pipeline, and helpers they share.
#pragma once

#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>
#include <optional>

#include "config/schema.h"
#include "data/collate.h"
#include "data/encode.h"
#include "data/tokenizer.h"
#include "trainer/model/transformer.h"
#include "trainer/metrics/metrics.h"
#include "trainer/runtime/communicators.h"
#include "trainer/runtime/world.h"
#include "trainer/stages/train_loop.h"

namespace aligntrain::stages {

struct StageEnv {
  const runtime::World& world;
  const config::Recipe& recipe;
  runtime::Groups& groups;
  at::Device device;
  metrics::MetricsLog& metrics;
};

struct StageResult {
  nlohmann::ordered_json summary;  // one row of the end-of-run table (also stored in DONE)
  bool stopped = false;            // a stop signal ended the stage after a checkpoint
};

// The summary row of a training stage.
nlohmann::ordered_json summary_of(const config::StageConfig& stage, const TrainOutcome& outcome);

// The summary row of an eval stage: its held-out loss and, when it has one, accuracy.
nlohmann::ordered_json eval_summary(double loss, std::optional<double> accuracy, double seconds);

// The data layer's truncation side for a recipe's data.truncate.
data::Truncate truncate_of(config::Truncate t);

// A collated batch as model input on `device`: ids, attention mask (only when there is padding), positions and
// segments (packed rows), the 0/1 loss mask and the labels (next token where the loss mask is 1, -100 elsewhere).
struct ModelBatch {
  model::ForwardInput input;
  at::Tensor loss_mask, labels;
};
ModelBatch model_batch(const data::Batch& batch, const at::Device& device);

// Rows of `mb` in one group (the responses or samples of one prompt: equal `group` keys) share the tokens they have
// in common at their start with the group's first row, so that each shared token goes through the model once
// (ForwardInput::shared_prefix). `rows` are the batch's rows, in order. Nothing is set when no token is shared.
void share_prefixes(ModelBatch& mb, const std::vector<const data::Encoded*>& rows, const std::vector<int64_t>& group);

// Padding id and prompt masking for a stage's batches.
data::CollateOptions collate_options(const data::Tokenizer& tok, const config::StageConfig& stage);

// The dtype a trained (policy) model lives in, and the one a frozen model `name` is kept in.
at::ScalarType policy_dtype(const config::Recipe& recipe);
at::ScalarType frozen_dtype(const config::Recipe& recipe, const std::string& name);

}  // namespace aligntrain::stages
