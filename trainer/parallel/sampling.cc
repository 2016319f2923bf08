// See sampling.h.
#include "trainer/parallel/sampling.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>

#include "trainer/parallel/mappings.h"

namespace aligntrain::parallel {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// The best score's global id per row: [B] int64. Ties go to the lowest id (torch's argmax keeps the first).
at::Tensor global_argmax(const at::Tensor& scores, int64_t start, runtime::Communicator& g) {
  const auto [best, idx] = scores.max(-1, /*keepdim=*/true);
  const auto ids = idx + start;
  if (g.size() == 1) return ids.squeeze(-1);
  const auto all_best = g.all_gather(best.contiguous(), -1);  // [B, p], rank order = id order
  const auto all_ids = g.all_gather(ids.contiguous(), -1);
  return all_ids.gather(-1, all_best.argmax(-1, /*keepdim=*/true)).squeeze(-1);
}

struct Candidates {
  at::Tensor values, ids;  // [B, m], values descending
};

// The m best scores over the full vocabulary and their global ids.
Candidates top_candidates(const at::Tensor& z, int64_t m, int64_t start, runtime::Communicator& g) {
  const int64_t local = std::min<int64_t>(m, z.size(-1));
  auto [values, idx] = z.topk(local, -1);
  auto ids = idx + start;
  if (g.size() > 1) {
    values = g.all_gather(values.contiguous(), -1);
    ids = g.all_gather(ids.contiguous(), -1);
  }
  const auto [best, pos] = values.topk(std::min<int64_t>(m, values.size(-1)), -1);
  return {best, ids.gather(-1, pos)};
}

at::Tensor gumbel(const at::Tensor& uniform) { return -at::log(-at::log(uniform)); }

}  // namespace

at::Tensor sample_tokens(const at::Tensor& local_logits, const SamplingParams& p, const at::Tensor& uniform,
                         int64_t vocab_limit, runtime::Communicator& g) {
  auto z = local_logits.detach().to(at::kFloat);
  const int64_t local = z.size(-1), start = g.rank() * local, vocab = local * g.size();
  if (vocab_limit > 0 && vocab_limit < start + local) {
    z = z.clone();
    z.narrow(-1, std::max<int64_t>(vocab_limit - start, 0), start + local - std::max(vocab_limit, start))
        .fill_(kNegInf);
  }
  if (p.temperature <= 0) return global_argmax(z, start, g).to(at::kCPU);
  z = z / p.temperature;
  const auto noise = gumbel(uniform.to(z.device()));
  if (p.top_k <= 0 && p.top_p >= 1.0) return global_argmax(z + noise.narrow(-1, start, local), start, g).to(at::kCPU);

  // Candidates that certainly contain every token the filters keep.
  Candidates c;
  at::Tensor log_norm;  // log of the mass the top-p fractions are taken of: [B, 1]
  if (p.top_k > 0) {
    c = top_candidates(z, std::min(p.top_k, vocab), start, g);
    log_norm = at::logsumexp(c.values, -1, /*keepdim=*/true);  // top-p sees the top-k renormalised distribution
  } else {
    const auto m = all_reduce_max_detached(std::get<0>(z.max(-1, /*keepdim=*/true)), g);
    auto sum = (z - m).exp().sum(-1, /*keepdim=*/true);
    if (g.size() > 1) g.all_reduce(sum, runtime::ReduceOp::kSum);
    log_norm = sum.log() + m;
    for (int64_t n = std::min<int64_t>(64, vocab);; n = std::min(2 * n, vocab)) {
      c = top_candidates(z, n, start, g);
      const bool covered = (c.values - log_norm).exp().sum(-1).ge(p.top_p).all().item<bool>();
      if (covered || n == vocab) break;
    }
  }
  auto scores = c.values + noise.gather(-1, c.ids);
  if (p.top_p < 1.0) {
    const auto probs = (c.values - log_norm).exp();
    const auto above = probs.cumsum(-1) - probs;  // mass of the higher-ranked candidates
    auto keep = above.lt(p.top_p);
    keep.select(-1, 0).fill_(true);
    scores = scores.masked_fill(keep.logical_not(), kNegInf);
  }
  return c.ids.gather(-1, scores.argmax(-1, /*keepdim=*/true)).squeeze(-1).to(at::kCPU);
}

}  // namespace aligntrain::parallel
