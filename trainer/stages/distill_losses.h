// The per-method part of a distill stage (METHODS.md §A, §B, §D.1), one class per method: for each response column
// the weight of its NLL and of its divergence term, which positions and per-position weights the divergence uses,
// the divergence itself over the selected positions (chunked through the student's LM head, so full-vocabulary
// logits never exist for a whole batch), and the step's metrics. The shared machinery — batches, hidden states,
// teachers, sums over the data-parallel group, backward — is DistillObjective's (distill.cc).
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>

#include "config/schema.h"
#include "trainer/model/transformer.h"
#include "trainer/objectives/distill.h"
#include "trainer/runtime/communicator.h"
#include "trainer/stages/distill_data.h"
#include "trainer/stages/objective.h"

namespace aligntrain::stages {

// What a method's divergence reads for one response column of a micro-batch.
struct DivergenceInput {
  const at::Tensor& student_hidden;    // [P, h] student final hidden states at the selected positions
  model::LmHead& student_head;
  const at::Tensor& weights;           // [P] per-position factors of the loss mean
  model::CausalLM* teacher;            // resident teacher (nullptr when its tables are precomputed)
  model::CausalLM* reference;          // resident teacher_reference (nullptr when precomputed or absent)
  const at::Tensor& teacher_hidden;    // [P, h] of the resident teacher; undefined otherwise
  const at::Tensor& reference_hidden;  // [P, h] of the resident teacher_reference; undefined otherwise
  // Top-k table rows [start, start + n) of the teacher (reference = false) or teacher_reference (true), from the
  // resident model or the precomputed tables.
  std::function<objectives::TeacherTable(bool reference, int64_t start, int64_t n)> table;
  runtime::Communicator& tp;
  int64_t vocab;                       // the student's vocabulary size (config)
};

class DistillLoss {
 public:
  virtual ~DistillLoss() = default;
  // Weight of the NLL of column c (the NLL of column 0 is always reported, as a metric at weight 0).
  virtual double nll_weight(int64_t column) const = 0;
  // Weight of column c's divergence term; it is computed where has_divergence(c), as a metric at weight 0.
  virtual double distill_weight(int64_t column) const = 0;
  virtual bool has_divergence(int64_t column) const = 0;
  // true: the divergence compares the response tokens' own positions (AlignDistil's faithful mask); false: the
  // positions predicting a response token.
  virtual bool own_positions() const { return false; }
  // [P] per-position weights from the [B, T] position mask (row-major selection): the token mean over the global
  // batch (`tokens` response tokens) by default.
  virtual at::Tensor position_weights(const at::Tensor& pos_mask, const at::Tensor& selected, double tokens,
                                      int64_t sequences) const;
  // Σ weights·ℓ over the selected positions (a differentiable scalar).
  virtual at::Tensor divergence(const DivergenceInput& in) const = 0;
  // The step's metrics ("loss" first) from the global means of the NLL and of the two columns' divergences.
  virtual StepMetrics metrics(double nll, double d0, double d1) const = 0;
};

std::unique_ptr<DistillLoss> make_distill_loss(DistillMethod method, const config::LossConfig& loss);

}  // namespace aligntrain::stages
