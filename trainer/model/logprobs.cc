// See logprobs.h.
#include "trainer/model/logprobs.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include <vector>

namespace aligntrain::model {

namespace {

// One fp32 log-softmax block per chunk is kept for the backward; there it becomes
// g · (onehot(label) − softmax) in place and feeds the two matrix products of the LM head's gradient.
class FusedTokenLogprobs : public torch::autograd::Function<FusedTokenLogprobs> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                            const at::Tensor& labels, int64_t chunk) {
    const int64_t n = hidden.size(0);
    const auto valid = labels.ne(kIgnoreIndex);
    const auto safe = at::where(valid, labels, at::zeros_like(labels));
    auto out = at::empty({n}, hidden.options().dtype(at::kFloat));
    std::vector<at::Tensor> blocks;
    for (int64_t start = 0; start < n; start += chunk) {
      const int64_t c = std::min(chunk, n - start);
      auto lp = at::log_softmax(at::matmul(hidden.narrow(0, start, c), weight.t()), 1, at::kFloat);
      out.narrow(0, start, c).copy_(lp.gather(1, safe.narrow(0, start, c).unsqueeze(1)).squeeze(1));
      blocks.push_back(std::move(lp));
    }
    out.masked_fill_(valid.logical_not(), 0.0);
    ctx->save_for_backward({hidden, weight, safe, valid});
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["blocks"] = c10::List<at::Tensor>(blocks);
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const auto &hidden = saved[0], &weight = saved[1], &safe = saved[2], &valid = saved[3];
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    auto blocks = ctx->saved_data["blocks"].toTensorList();
    ctx->saved_data.erase("blocks");
    const auto g = grad_out[0].to(at::kFloat).masked_fill(valid.logical_not(), 0.0);
    auto grad_h = at::empty_like(hidden);
    const bool want_w = ctx->needs_input_grad(1);  // false for a frozen LM head (LoRA)
    auto grad_w = want_w ? at::zeros_like(weight) : at::Tensor();
    for (int64_t start = 0, i = 0; start < hidden.size(0); start += chunk, ++i) {
      const int64_t c = std::min(chunk, hidden.size(0) - start);
      at::Tensor block = blocks.get(i);
      blocks.set(i, at::Tensor());  // drop the list's reference: the buffer is reused in place
      const auto gc = g.narrow(0, start, c).unsqueeze(1);
      block.exp_().mul_(-gc);
      block.scatter_add_(1, safe.narrow(0, start, c).unsqueeze(1), gc);
      if (block.scalar_type() != hidden.scalar_type()) block = block.to(hidden.scalar_type());
      auto gh = grad_h.narrow(0, start, c);
      at::mm_out(gh, block, weight);
      if (want_w) grad_w.addmm_(block.t(), hidden.narrow(0, start, c));
    }
    return {grad_h, grad_w, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

int64_t default_chunk_positions(int64_t vocab) {
  return std::max<int64_t>(1, (int64_t{32} << 20) / (std::max<int64_t>(vocab, 1) * 4));
}

at::Tensor fused_token_logprobs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                int64_t chunk) {
  if (at::GradMode::is_enabled() && (hidden.requires_grad() || weight.requires_grad()))
    return FusedTokenLogprobs::apply(hidden, weight, labels, chunk);
  // Nothing to differentiate (a frozen reference, an evaluation, a metric): only the positions with a label, one
  // chunk of logits at a time, nothing kept.
  at::NoGradGuard no_grad;
  const auto rows = labels.ne(kIgnoreIndex).nonzero().squeeze(1);
  const auto h = hidden.index_select(0, rows), l = labels.index_select(0, rows).unsqueeze(1);
  auto picked = at::empty({rows.size(0)}, hidden.options().dtype(at::kFloat));
  for (int64_t start = 0; start < rows.size(0); start += chunk) {
    const int64_t c = std::min(chunk, rows.size(0) - start);
    const auto lp = at::log_softmax(at::matmul(h.narrow(0, start, c), weight.t()), 1, at::kFloat);
    picked.narrow(0, start, c).copy_(lp.gather(1, l.narrow(0, start, c)).squeeze(1));
  }
  return at::zeros({hidden.size(0)}, picked.options()).index_copy_(0, rows, picked);
}

at::Tensor token_logprobs(CausalLM& model, const at::Tensor& hidden, const at::Tensor& labels, int64_t chunk) {
  const int64_t b = hidden.size(0), t = hidden.size(1);
  const auto weight = model.lm_head->weight();
  if (chunk <= 0) chunk = default_chunk_positions(weight.size(0));
  return fused_token_logprobs(hidden.reshape({b * t, hidden.size(2)}), weight, labels.reshape({b * t}), chunk)
      .view({b, t});
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
