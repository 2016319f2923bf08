// See logprobs.h.
#include "trainer/model/logprobs.h"

#include <ATen/ATen.h>

#include <vector>

namespace aligntrain::model {

at::Tensor token_logprobs(CausalLM& model, const at::Tensor& hidden, const at::Tensor& labels, int64_t chunk) {
  const int64_t b = hidden.size(0), t = hidden.size(1);
  const auto flat_h = hidden.reshape({b * t, hidden.size(2)});
  const auto flat_l = labels.reshape({b * t});
  std::vector<at::Tensor> parts;
  for (int64_t start = 0; start < b * t; start += chunk) {
    const int64_t n = std::min(chunk, b * t - start);
    const auto logits = model.lm_head_forward(flat_h.narrow(0, start, n)).to(at::kFloat);
    const auto lab = flat_l.narrow(0, start, n);
    const auto valid = lab.ne(kIgnoreIndex);
    const auto safe = at::where(valid, lab, at::zeros_like(lab));
    const auto picked = logits.gather(1, safe.unsqueeze(1)).squeeze(1);
    const auto lp = picked - at::logsumexp(logits, {1});
    parts.push_back(at::where(valid, lp, at::zeros_like(lp)));
  }
  return at::cat(parts).view({b, t});
}

at::Tensor shift_labels(const at::Tensor& input_ids, const at::Tensor& loss_mask) {
  const int64_t t = input_ids.size(1);
  auto labels = at::full_like(input_ids, kIgnoreIndex);
  if (t < 2) return labels;
  const auto next = input_ids.narrow(1, 1, t - 1);
  const auto keep = loss_mask.narrow(1, 1, t - 1).to(at::kBool);
  labels.narrow(1, 0, t - 1).copy_(at::where(keep, next, at::full_like(next, kIgnoreIndex)));
  return labels;
}

}  // namespace aligntrain::model
