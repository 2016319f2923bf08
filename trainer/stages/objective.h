// What a training stage optimises, as seen by the generic training loop (train_loop.h). An objective owns its
// encoded data and the models it needs besides the policy; the loop owns the policy's optimizer, the schedule,
// data order, checkpoints and reporting.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "data/sampler.h"

namespace aligntrain::stages {

// Named values in report order ("loss" first).
using StepMetrics = std::vector<std::pair<std::string, double>>;

class TrainObjective {
 public:
  virtual ~TrainObjective() = default;

  virtual int64_t num_examples() const = 0;
  // Token count of each example (used by packing); may be empty when the objective does not pack.
  virtual const std::vector<int64_t>& lengths() const = 0;
  virtual bool packing() const { return false; }

  // Before a step's micro-batches; every rank sees the whole global batch (e.g. to count its loss tokens).
  virtual void begin_step(const data::StepRows& step) = 0;
  // Forward and backward of one of this rank's micro-batches (rows of example indices). The gradient it leaves
  // is scaled so that summing over micro-batches and averaging over data-parallel ranks gives the gradient of
  // the global-batch loss.
  virtual void micro_step(const std::vector<std::vector<int64_t>>& rows) = 0;
  // Whether micro_step runs (at most) one backward pass: then the loop overlaps the data-parallel gradient all-reduce
  // with the last micro-batch's backward (a gradient is final once that pass has added to it); otherwise the
  // all-reduce runs after the last micro_step.
  virtual bool one_backward_per_micro_step() const { return true; }
  // The step's metrics, reduced over the data-parallel group; "loss" first. `report` (the same on every rank) says
  // whether the loop logs this step: when false the objective may return no metrics, and should not read device
  // values on the host only to report them (runtime/host_sync.h).
  virtual StepMetrics end_step(bool report) = 0;
  // Non-padding tokens in the step's global batch.
  virtual int64_t step_tokens() const = 0;

  // Optimizer steps taken on each step's rows (online stages: online.updates_per_batch updates on one batch of
  // samples). The loop draws new rows, writes checkpoints and honours stop signals only between such batches.
  virtual int64_t steps_per_batch() const { return 1; }

  // State that must survive a resume (e.g. running means), stored in checkpoints.
  virtual nlohmann::json state() const { return nlohmann::json::object(); }
  virtual void load_state(const nlohmann::json&) {}
};

}  // namespace aligntrain::stages
