// See sequence_classifier.h.
#include "trainer/model/sequence_classifier.h"

#include <ATen/ATen.h>

#include <stdexcept>

namespace aligntrain::model {

ModelConfig classifier_decoder_config(const ClassifierConfig& config) {
  ModelConfig c = config.decoder;
  c.tie_word_embeddings = true;
  return c;
}

void add_score_head(CausalLM& lm, int64_t num_labels) {
  const int64_t hidden = lm.config().hidden_size;
  TensorSpec spec{kScoreWeight, {num_labels, hidden}, Split::kReplicated, Init::kNormal};
  lm.add_parameter(spec, at::zeros({num_labels, hidden}, at::TensorOptions().dtype(lm.dtype())), /*trainable=*/false);
}

int64_t pooled_position(const std::vector<int32_t>& ids, std::optional<int32_t> pad_id) {
  if (ids.empty()) throw std::invalid_argument("pooled_position: empty sequence");
  if (!pad_id) return static_cast<int64_t>(ids.size()) - 1;
  for (size_t i = ids.size(); i-- > 0;)
    if (ids[i] != *pad_id) return static_cast<int64_t>(i);
  return 0;
}

at::Tensor classifier_scores(CausalLM& lm, const ForwardInput& in, const at::Tensor& positions) {
  const Parameter* score = lm.parameter_set().find(kScoreWeight);
  if (score == nullptr) throw std::logic_error("classifier_scores: the model has no score head (add_score_head)");
  const at::Tensor h = lm.hidden_states(in);  // [B, T, hidden]
  const int64_t b = h.size(0), t = h.size(1);
  const at::Tensor pos = positions.to(at::TensorOptions().dtype(at::kLong).device(h.device()));
  const at::Tensor flat = at::arange(b, pos.options()) * t + pos;
  const at::Tensor pooled = h.reshape({b * t, h.size(2)}).index_select(0, flat);  // [B, hidden]
  return at::matmul(pooled.to(at::kFloat), score->tensor.to(at::kFloat).t());
}

}  // namespace aligntrain::model
