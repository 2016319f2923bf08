// See token_logprobs.h.
#include "kernels/token_logprobs.h"

#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <atomic>
#include <vector>

namespace aligntrain::kernels {

namespace {

constexpr int64_t kIgnoreIndex = -100;
std::atomic<int64_t> g_budget{int64_t{128} << 20};

// Rows per block of row-wise work: about 2 MiB of a [rows, V/p] tensor.
int64_t block_rows_of(const at::Tensor& z) {
  return std::max<int64_t>(1, (int64_t{2} << 20) / std::max<int64_t>(1, z.size(1) * z.element_size()));
}

// The product hidden · Wᵀ of one chunk in the weight's dtype, as fp32 (fp64 for fp64 weights), into `buffer` when the
// dtypes allow (one allocation for every chunk).
at::Tensor chunk_logits(const at::Tensor& h, const at::Tensor& w, at::Tensor& buffer) {
  if (w.scalar_type() == at::kFloat || w.scalar_type() == at::kDouble) {
    if (!buffer.defined() || buffer.size(0) < h.size(0)) buffer = at::empty({h.size(0), w.size(0)}, w.options());
    auto z = buffer.narrow(0, 0, h.size(0));
    at::mm_out(z, h, w.t());
    return z;
  }
  return at::mm(h, w.t()).to(at::kFloat);
}

// ∂(Σ g·lp)/∂z in place from a chunk's logits and its logsumexp: −g·softmax, plus g at each row's label.
void logits_to_grad(at::Tensor& z, const at::Tensor& lse, const at::Tensor& labels, int64_t vocab_start,
                    const at::Tensor& g) {
  const int64_t n = z.size(0), local = z.size(1), block = block_rows_of(z);
  const auto gz = g.to(z.scalar_type());
  for (int64_t r = 0; r < n; r += block) {
    const int64_t b = std::min(block, n - r);
    z.narrow(0, r, b).sub_(lse.narrow(0, r, b).unsqueeze(1)).exp_().mul_(-gz.narrow(0, r, b).unsqueeze(1));
  }
  const auto mine = labels.ge(vocab_start).logical_and(labels.lt(vocab_start + local));
  const auto idx = at::where(mine, labels - vocab_start, at::zeros_like(labels)).unsqueeze(1);
  z.scatter_add_(1, idx, at::where(mine, gz, at::zeros_like(gz)).unsqueeze(1));
}

class TokenLogprobs : public torch::autograd::Function<TokenLogprobs> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                            const at::Tensor& labels, int64_t vocab_start, const ShardReduce* shards, int64_t chunk) {
    const auto rows = labels.ne(kIgnoreIndex).nonzero().squeeze(1);
    const int64_t r = rows.size(0);
    const auto h = hidden.detach().index_select(0, rows).contiguous();
    const auto w = weight.detach();
    const auto l = labels.index_select(0, rows);
    const bool keep = r <= chunk;  // one chunk: its block is kept instead of formed again in backward
    auto lp = at::empty({r}, hidden.options().dtype(at::kFloat));
    auto lse = at::empty({r}, lp.options());
    at::Tensor buffer, kept;
    for (int64_t start = 0; start < r; start += chunk) {
      const int64_t c = std::min(chunk, r - start);
      auto z = chunk_logits(h.narrow(0, start, c), w, buffer);
      at::Tensor lse_c;
      lp.narrow(0, start, c).copy_(token_logprob_rows(z, l.narrow(0, start, c), vocab_start, {}, *shards, &lse_c));
      lse.narrow(0, start, c).copy_(lse_c);
      if (keep) kept = z;
    }
    ctx->save_for_backward({h, w, l, rows, lse});
    // The parameter itself (not a saved copy): its .grad receives the weight gradient in backward.
    if (weight.requires_grad() && weight.is_leaf()) ctx->saved_data["param"] = weight;
    ctx->saved_data["n"] = hidden.size(0);
    ctx->saved_data["vocab_start"] = vocab_start;
    ctx->saved_data["chunk"] = chunk;
    if (keep && kept.defined()) ctx->saved_data["kept"] = kept;
    return at::zeros({hidden.size(0)}, lp.options()).index_copy_(0, rows, lp);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const auto &h = saved[0], &w = saved[1], &l = saved[2], &rows = saved[3], &lse = saved[4];
    const int64_t n = ctx->saved_data["n"].toInt(), vocab_start = ctx->saved_data["vocab_start"].toInt();
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    at::Tensor kept, param;
    if (ctx->saved_data.count("kept")) kept = ctx->saved_data["kept"].toTensor();
    if (ctx->saved_data.count("param")) param = ctx->saved_data["param"].toTensor();
    ctx->saved_data.clear();
    const auto g = grad_out[0].to(at::kFloat).index_select(0, rows);
    const int64_t r = rows.size(0);
    auto grad_h = at::zeros({r, h.size(1)}, h.options());
    // A leaf weight's gradient goes straight into its .grad (gradient-accumulation fusion: no weight-sized buffer for
    // autograd to add); otherwise it is returned.
    at::Tensor grad_w;
    const bool want_w = ctx->needs_input_grad(1);  // false for a frozen LM head (LoRA): no weight gradient at all
    if (!want_w) {
    } else if (param.defined()) {
      if (!param.grad().defined()) param.mutable_grad() = at::zeros_like(w, at::MemoryFormat::Contiguous);
      grad_w = param.grad();
    } else {
      grad_w = at::zeros_like(w, at::MemoryFormat::Contiguous);
    }
    at::Tensor buffer;
    for (int64_t start = 0; start < r; start += chunk) {
      const int64_t c = std::min(chunk, r - start);
      const auto h_c = h.narrow(0, start, c);
      at::Tensor z = kept.defined() ? kept : chunk_logits(h_c, w, buffer);
      logits_to_grad(z, lse.narrow(0, start, c), l.narrow(0, start, c), vocab_start, g.narrow(0, start, c));
      const auto d = z.scalar_type() == w.scalar_type() ? z : z.to(w.scalar_type());
      auto gh = grad_h.narrow(0, start, c);
      at::mm_out(gh, d, w);
      if (want_w) grad_w.addmm_(d.t(), h_c);
    }
    auto grad_hidden = at::zeros({n, h.size(1)}, h.options()).index_copy_(0, rows, grad_h);
    return {grad_hidden, param.defined() || !want_w ? at::Tensor() : grad_w, at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

int64_t logits_budget_bytes() { return g_budget.load(); }
void set_logits_budget_bytes(int64_t bytes) { g_budget = std::max<int64_t>(bytes, 1); }

int64_t logits_chunk_rows(int64_t vocab_local, int64_t budget_bytes) {
  return std::max<int64_t>(1, budget_bytes / (std::max<int64_t>(vocab_local, 1) * 4));
}

at::Tensor token_logprob_rows(at::Tensor& z, const at::Tensor& labels, int64_t vocab_start,
                              const at::Tensor& grad_weights, const ShardReduce& shards, at::Tensor* lse_out) {
  TORCH_CHECK(z.dim() == 2 && z.is_contiguous(), "token_logprob_rows: logits must be a contiguous [n, V/p] tensor");
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == z.size(0), "token_logprob_rows: labels must be [n]");
  const int64_t n = z.size(0), local = z.size(1), block = block_rows_of(z);
  auto m = at::empty({n}, z.options());
  for (int64_t r = 0; r < n; r += block) {
    const int64_t b = std::min(block, n - r);
    m.narrow(0, r, b).copy_(at::amax(z.narrow(0, r, b), 1));
  }
  if (shards.max) shards.max(m);
  auto s = at::empty({n}, z.options());
  for (int64_t r = 0; r < n; r += block) {
    const int64_t b = std::min(block, n - r);
    s.narrow(0, r, b).copy_((z.narrow(0, r, b) - m.narrow(0, r, b).unsqueeze(1)).exp_().sum(1));
  }
  if (shards.sum) shards.sum(s);
  const auto lse = s.log_().add_(m);
  const auto valid = labels.ne(kIgnoreIndex);
  const auto mine = valid.logical_and(labels.ge(vocab_start)).logical_and(labels.lt(vocab_start + local));
  const auto idx = at::where(mine, labels - vocab_start, at::zeros_like(labels)).unsqueeze(1);
  auto picked = z.gather(1, idx).squeeze(1).masked_fill_(mine.logical_not(), 0.0);
  if (shards.sum) shards.sum(picked);
  auto lp = (picked - lse).masked_fill_(valid.logical_not(), 0.0);
  if (lse_out) *lse_out = lse;
  if (grad_weights.defined()) {
    logits_to_grad(z, lse, labels, vocab_start, grad_weights.masked_fill(valid.logical_not(), 0.0));
  }
  return lp;
}

at::Tensor token_logprobs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                          int64_t vocab_start, const ShardReduce& shards, int64_t chunk_rows) {
  TORCH_CHECK(hidden.dim() == 2 && weight.dim() == 2 && weight.size(1) == hidden.size(1),
              "token_logprobs: hidden must be [N, H] and weight [V/p, H]");
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == hidden.size(0), "token_logprobs: labels must be [N]");
  if (chunk_rows <= 0) chunk_rows = logits_chunk_rows(weight.size(0));
  if (at::GradMode::is_enabled() && (hidden.requires_grad() || weight.requires_grad()))
    return TokenLogprobs::apply(hidden, weight, labels, vocab_start, &shards, chunk_rows);
  at::NoGradGuard no_grad;
  // Nothing to differentiate: the same chunks, nothing kept.
  const auto rows = labels.ne(kIgnoreIndex).nonzero().squeeze(1);
  const auto h = hidden.index_select(0, rows);
  const auto l = labels.index_select(0, rows);
  auto lp = at::empty({rows.size(0)}, hidden.options().dtype(at::kFloat));
  at::Tensor buffer;
  for (int64_t start = 0; start < rows.size(0); start += chunk_rows) {
    const int64_t c = std::min(chunk_rows, rows.size(0) - start);
    auto z = chunk_logits(h.narrow(0, start, c), weight, buffer);
    lp.narrow(0, start, c).copy_(token_logprob_rows(z, l.narrow(0, start, c), vocab_start, {}, shards));
  }
  return at::zeros({hidden.size(0)}, lp.options()).index_copy_(0, rows, lp);
}

}  // namespace aligntrain::kernels
