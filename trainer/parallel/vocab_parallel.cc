// See vocab_parallel.h.
#include "trainer/parallel/vocab_parallel.h"

#include <ATen/ATen.h>

#include <vector>

#include "kernels/token_logprobs.h"
#include "trainer/model/logprobs.h"
#include "trainer/parallel/mappings.h"

namespace aligntrain::parallel {

kernels::ShardReduce shard_reduce(runtime::Communicator& group) {
  if (group.size() == 1) return {};
  runtime::Communicator* g = &group;
  return {[g](at::Tensor& t) { g->all_reduce(t, runtime::ReduceOp::kMax); },
          [g](at::Tensor& t) { g->all_reduce(t, runtime::ReduceOp::kSum); }};
}

namespace {

// log Σ_v exp(z_v) over the full vocabulary: [N, 1]. The max is a detached constant shift.
at::Tensor global_logsumexp(const at::Tensor& z, runtime::Communicator& g) {
  const auto m = all_reduce_max_detached(std::get<0>(z.max(-1, /*keepdim=*/true)), g);
  const auto local_sum = (z - m).exp().sum(-1, /*keepdim=*/true);
  return reduce_from_group(local_sum, g).log() + m;
}

}  // namespace

at::Tensor log_softmax(const at::Tensor& local_logits, runtime::Communicator& g) {
  const auto z = local_logits.to(at::kFloat);
  // The result is this rank's columns, so the shared logsumexp receives gradient from every rank's columns:
  // copy_to_group all-reduces it in backward (reduce_from_group alone would keep only this rank's share).
  return z - copy_to_group(global_logsumexp(z, g), g);
}

at::Tensor token_logprobs(const at::Tensor& local_logits, const at::Tensor& labels, runtime::Communicator& g) {
  const auto z = local_logits.to(at::kFloat);
  const int64_t local = z.size(-1), start = g.rank() * local;
  const auto valid = labels.ne(model::kIgnoreIndex);
  const auto mine = valid.logical_and(labels.ge(start)).logical_and(labels.lt(start + local));
  const auto idx = at::where(mine, labels - start, at::zeros_like(labels));
  const auto picked = z.gather(-1, idx.unsqueeze(-1)).squeeze(-1).masked_fill(mine.logical_not(), 0.0);
  const auto label_logit = reduce_from_group(picked, g);
  const auto lp = label_logit - global_logsumexp(z, g).squeeze(-1);
  return lp.masked_fill(valid.logical_not(), 0.0);
}

at::Tensor forward_kl(const at::Tensor& p_logits, const at::Tensor& q_logits, runtime::Communicator& g) {
  const auto lp = log_softmax(p_logits, g), lq = log_softmax(q_logits, g);
  return reduce_from_group((lp.exp() * (lp - lq)).sum(-1), g);
}

at::Tensor reverse_kl(const at::Tensor& p_logits, const at::Tensor& q_logits, runtime::Communicator& g) {
  return forward_kl(q_logits, p_logits, g);
}

at::Tensor jsd(const at::Tensor& p_logits, const at::Tensor& q_logits, double beta, runtime::Communicator& g) {
  const auto lp = log_softmax(p_logits, g), lq = log_softmax(q_logits, g);
  // log m = logsumexp(log β + log p, log(1−β) + log q), stable for β in (0, 1).
  const auto lm = at::logaddexp(lp + std::log(beta), lq + std::log1p(-beta));
  const auto kl_pm = (lp.exp() * (lp - lm)).sum(-1), kl_qm = (lq.exp() * (lq - lm)).sum(-1);
  return reduce_from_group(beta * kl_pm + (1.0 - beta) * kl_qm, g);
}

TopK top_k(const at::Tensor& local_logits, int64_t k, runtime::Communicator& g) {
  const auto z = local_logits.detach().to(at::kFloat);
  const auto [values, local_idx] = z.topk(k, -1);
  if (g.size() == 1) return {values, local_idx};
  const auto global_idx = local_idx + g.rank() * z.size(-1);
  const auto all_values = g.all_gather(values.contiguous(), -1);   // [N, k·p]
  const auto all_idx = g.all_gather(global_idx.contiguous(), -1);
  const auto [best, pos] = all_values.topk(k, -1);
  return {best, all_idx.gather(-1, pos)};
}

at::Tensor token_logprobs(model::CausalLM& m, const at::Tensor& hidden, const at::Tensor& labels,
                          runtime::Communicator& g, int64_t chunk) {
  const int64_t b = hidden.size(0), t = hidden.size(1);
  const auto weight = m.lm_head->weight();
  // Hidden states are replicated over the group and each rank holds part of the vocabulary: copy_to_group sums the
  // ranks' shares of their gradient.
  const auto flat_h = hidden.reshape({b * t, hidden.size(2)});
  const auto h = g.size() > 1 ? copy_to_group(flat_h, g) : flat_h;
  const auto shards = shard_reduce(g);
  return kernels::token_logprobs(h, weight, labels.reshape({b * t}), g.rank() * weight.size(0), shards, chunk)
      .view({b, t});
}

}  // namespace aligntrain::parallel
