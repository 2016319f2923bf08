// The score head of a sequence classifier (classifier_config.h) on the decoder of transformer.h, and its scores as
// transformers' <Family>ForSequenceClassification computes them: logits = score(final hidden states), pooled at the
// last position whose token is not the pad id (the rightmost non-pad token; position 0 when every token is pad).
//
// The decoder is a CausalLM built with tied embeddings, so that its name table (hf_names.h) holds exactly a
// classifier checkpoint's decoder tensors (no lm_head.weight; the tied head is never used), and `score.weight`
// [num_labels, hidden] is added to its parameter set, replicated over the tensor-parallel group and frozen. Loading
// (checkpoint_io.h) then checks every tensor by name and shape as for any model: a folder without `score.weight` is
// a DataError naming the folder and the tensor.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "trainer/model/classifier_config.h"
#include "trainer/model/transformer.h"

namespace aligntrain::model {

inline constexpr const char* kScoreWeight = "score.weight";

// The config to build the classifier's decoder with (tie_word_embeddings on: no LM head tensor).
ModelConfig classifier_decoder_config(const ClassifierConfig& config);

// Registers `score.weight` [num_labels, hidden] (zeros until loaded; frozen) on `lm`.
void add_score_head(CausalLM& lm, int64_t num_labels);

// The position transformers pools for one row of `ids` (right-padded or not): the last index whose id is not
// `pad_id`, 0 when there is none; the last index when there is no pad id (transformers' batch-of-one rule).
int64_t pooled_position(const std::vector<int32_t>& ids, std::optional<int32_t> pad_id);

// Scores [B, num_labels] (fp32) of a batch: the score head applied to the final hidden state at `positions` [B]
// (int64, pooled_position of each row). Collective over the model's tensor-parallel group (the decoder's forward);
// every rank of the group gets the same scores.
at::Tensor classifier_scores(CausalLM& lm, const ForwardInput& in, const at::Tensor& positions);

}  // namespace aligntrain::model
