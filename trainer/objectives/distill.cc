// See distill.h.
#include "trainer/objectives/distill.h"

#include "kernels/token_logprobs.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "trainer/model/logprobs.h"
#include "trainer/parallel/mappings.h"
#include "trainer/parallel/vocab_parallel.h"

namespace aligntrain::objectives {

namespace {

using runtime::Communicator;

constexpr double kProbClamp = 1e-8;  // ADPA's prob_stabilize: both sides clamped to [1e-8, 1 − 1e-8]
constexpr double kLogFloor = 1e-7;   // DCKD's log max(q, 1e-7); ADPA's table floor

void require(bool ok, const char* fn, const std::string& what) {
  if (!ok) throw std::invalid_argument(std::string(fn) + ": " + what);
}

std::string shape(const at::Tensor& t) { return t.defined() ? c10::str(t.sizes()) : "undefined"; }

void require_logits(const at::Tensor& t, const char* fn, const char* name) {
  require(t.defined() && t.dim() == 2 && t.size(1) > 0, fn,
          std::string(name) + " must be [N, V/p] logits, got " + shape(t));
}

void require_same(const at::Tensor& a, const at::Tensor& b, const char* fn, const char* name_a, const char* name_b) {
  require(a.sizes() == b.sizes(), fn,
          std::string(name_a) + " " + shape(a) + " and " + name_b + " " + shape(b) + " must have the same shape");
}

// fp64 stays fp64 (finite-difference tests); everything else is computed in fp32.
at::ScalarType compute_type(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}
at::Tensor as_compute(const at::Tensor& t) { return t.to(compute_type(t)); }

// log Σ_v exp(z_v) over the full vocabulary: [N, 1]. The all-reduced max is a detached constant shift.
at::Tensor global_logsumexp(const at::Tensor& z, Communicator& g) {
  const auto m = parallel::all_reduce_max_detached(std::get<0>(z.max(-1, /*keepdim=*/true)), g);
  return parallel::reduce_from_group((z - m).exp().sum(-1, /*keepdim=*/true), g).log() + m;
}

// This rank's columns of the full log-softmax: [N, V/p]. Every consumer here is rank-local (its result is summed
// over the group afterwards by vocab_sum or pick), so the replicated logsumexp enters through copy_to_group: its
// gradient is the sum of every rank's share (reduce_from_group alone would keep only this rank's, which gives correct
// values but wrong gradients under TP). parallel::log_softmax computes the same values in fp32 only.
at::Tensor log_softmax(const at::Tensor& z, Communicator& g) {
  return z - parallel::copy_to_group(global_logsumexp(z, g), g);
}

// Σ over the full vocabulary of a per-column quantity [N, V/p] → [N] (replicated).
at::Tensor vocab_sum(const at::Tensor& x, Communicator& g) { return parallel::reduce_from_group(x.sum(-1), g); }

// values[n, ids[n, j]] for global ids [N, k] from this rank's columns [N, V/p]: each rank contributes the ids it owns
// and the sum over the group gives every id's value (0 for ids no rank owns, i.e. outside [0, V)).
at::Tensor pick(const at::Tensor& local, const at::Tensor& ids, Communicator& g) {
  const int64_t width = local.size(-1), start = g.rank() * width;
  const auto mine = ids.ge(start).logical_and(ids.lt(start + width));
  const auto idx = at::where(mine, ids - start, at::zeros_like(ids));
  return parallel::reduce_from_group(local.gather(-1, idx).masked_fill(mine.logical_not(), 0.0), g);
}

void require_table(const at::Tensor& indices, const at::Tensor& values, const char* fn, const char* name) {
  require(indices.defined() && indices.dim() == 2 && indices.size(1) > 0, fn,
          std::string(name) + ".indices must be [N, k], got " + shape(indices));
  require(indices.scalar_type() == at::kLong, fn, std::string(name) + ".indices must be int64");
  require_same(indices, values, fn, (std::string(name) + ".indices").c_str(), (std::string(name) + " values").c_str());
}

at::Tensor clamp_prob(const at::Tensor& p) { return p.clamp(kProbClamp, 1.0 - kProbClamp); }

// KL(q‖π*) for the student's log-probs lq and the synthetic teacher's log-probs ls (both [N, V/p]).
at::Tensor reverse_kl_of(const at::Tensor& lq, const at::Tensor& ls, Communicator& g) {
  return vocab_sum(lq.exp() * (lq - ls), g);
}

// Holds the gradients chunked_token_loss computed in its forward; the backward scales them by the incoming gradient.
// hidden and weight are inputs so that autograd routes their gradients (a tied weight reaches the embedding).
class ChunkedLoss : public torch::autograd::Function<ChunkedLoss> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                            const at::Tensor& loss, const at::Tensor& grad_hidden, const at::Tensor& grad_weight,
                            bool weight_grad_in_param) {
    ctx->saved_data["grad_hidden"] = grad_hidden;
    ctx->saved_data["grad_weight"] = weight_grad_in_param ? at::Tensor() : grad_weight;
    if (weight_grad_in_param) ctx->saved_data["weight_grad_in_param"] = true;
    return loss.clone();
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    const auto gh = ctx->saved_data["grad_hidden"].toTensor(), gw = ctx->saved_data["grad_weight"].toTensor();
    const bool in_param = ctx->saved_data.count("weight_grad_in_param") != 0;
    ctx->saved_data.clear();
    const auto& g = grad_out[0];
    // Checked on the device (no host read in the step; on CUDA a failure is a device-side assert).
    if (in_param)
      at::_assert_async(g.eq(1.0).all(), "chunked_token_loss: the weight gradient went into the parameter's .grad "
                                         "during the forward, so the loss must be back-propagated with gradient 1");
    // The buffers are this node's alone (saved_data is cleared): scaled in place, not copied.
    // An empty buffer is the placeholder of an input that needs no gradient.
    return {gh.defined() && gh.numel() > 0 ? gh.mul_(g.to(gh.scalar_type())) : at::Tensor(),
            gw.defined() && gw.numel() > 0 ? gw.mul_(g.to(gw.scalar_type())) : at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor kd_divergence(const at::Tensor& teacher_logits, const at::Tensor& student_logits, Divergence divergence,
                         double jsd_beta, double temperature, Communicator& g) {
  constexpr const char* fn = "kd_divergence";
  require_logits(teacher_logits, fn, "teacher_logits");
  require_logits(student_logits, fn, "student_logits");
  require_same(teacher_logits, student_logits, fn, "teacher_logits", "student_logits");
  require(temperature > 0.0, fn, "temperature must be > 0, got " + std::to_string(temperature));
  const auto zq = as_compute(student_logits);
  const auto lp = log_softmax(teacher_logits.detach().to(zq.scalar_type()) / temperature, g);
  const auto lq = log_softmax(zq / temperature, g);
  switch (divergence) {
    case Divergence::forward_kl: return vocab_sum(lp.exp() * (lp - lq), g);
    case Divergence::reverse_kl: return vocab_sum(lq.exp() * (lq - lp), g);
    case Divergence::tvd: return 0.5 * vocab_sum((lp.exp() - lq.exp()).abs(), g);
    case Divergence::jsd: {
      require(jsd_beta >= 0.0 && jsd_beta <= 1.0, fn, "jsd_beta must be in [0, 1], got " + std::to_string(jsd_beta));
      // TRL's endpoints: the formula tends to 0 there, the convention makes them the two KLs.
      if (jsd_beta == 0.0) return vocab_sum(lp.exp() * (lp - lq), g);
      if (jsd_beta == 1.0) return vocab_sum(lq.exp() * (lq - lp), g);
      // log m = logsumexp(log β + log p, log(1−β) + log q): no log(0).
      const auto lm = at::logaddexp(lp + std::log(jsd_beta), lq + std::log1p(-jsd_beta));
      return vocab_sum(jsd_beta * lp.exp() * (lp - lm) + (1.0 - jsd_beta) * lq.exp() * (lq - lm), g);
    }
  }
  throw std::invalid_argument("kd_divergence: unknown divergence");
}

TeacherTable teacher_table(const at::Tensor& teacher_logits, int64_t k, Communicator& g) {
  constexpr const char* fn = "teacher_table";
  require_logits(teacher_logits, fn, "teacher_logits");
  require(k >= 1 && k <= teacher_logits.size(1), fn,
          "k must be in [1, V/p = " + std::to_string(teacher_logits.size(1)) + "], got " + std::to_string(k));
  const auto z = as_compute(teacher_logits.detach());
  const auto indices = parallel::top_k(z, k, g).indices;
  // The probabilities come from this dtype's log-softmax, not from top_k's (fp32) values.
  const auto probs = pick(log_softmax(z, g), indices, g).exp();
  return {indices, probs, 1.0 - probs.sum(-1)};
}

at::Tensor dckd_kl(const at::Tensor& student_logits, const TeacherTable& table, int64_t student_vocab,
                   Communicator& g) {
  constexpr const char* fn = "dckd_kl";
  require_logits(student_logits, fn, "student_logits");
  require_table(table.indices, table.probs, fn, "table");
  require(table.indices.size(0) == student_logits.size(0), fn,
          "table has " + std::to_string(table.indices.size(0)) + " positions, student_logits " +
              std::to_string(student_logits.size(0)));
  require(table.remaining.defined() && table.remaining.dim() == 1 && table.remaining.size(0) == table.indices.size(0),
          fn, "table.remaining must be [N], got " + shape(table.remaining));
  const int64_t vocab = student_logits.size(1) * g.size();
  require(student_vocab >= 1 && student_vocab <= vocab, fn,
          "student_vocab must be in [1, " + std::to_string(vocab) + "], got " + std::to_string(student_vocab));

  const auto z = as_compute(student_logits);
  const auto ids = table.indices;
  const auto in_vocab = ids.ge(0).logical_and(ids.lt(student_vocab));
  // Teacher bins: out-of-vocabulary mass joins the rest bin.
  const auto probs = table.probs.detach().to(z.scalar_type());
  const auto p_named = probs.masked_fill(in_vocab.logical_not(), 0.0);
  const auto p_rest = table.remaining.detach().to(z.scalar_type()) + (probs - p_named).sum(-1);
  // Student bins: q at the ids (0 out of vocabulary), q_rest = 1 − Σ q.
  const auto q_named = pick(log_softmax(z, g), ids, g).exp().masked_fill(in_vocab.logical_not(), 0.0);
  const auto q_rest = 1.0 - q_named.sum(-1);
  const auto p = clamp_prob(at::cat({p_named, p_rest.unsqueeze(-1)}, -1));
  const auto q = clamp_prob(at::cat({q_named, q_rest.unsqueeze(-1)}, -1));
  return (p * (p.log() - q.clamp_min(kLogFloor).log())).sum(-1);
}

AdvantageTable adpa_advantages(const TeacherTable& dpo, const TeacherTable& ref) {
  constexpr const char* fn = "adpa_advantages";
  require_table(dpo.indices, dpo.probs, fn, "dpo");
  require_table(ref.indices, ref.probs, fn, "ref");
  require(dpo.indices.size(0) == ref.indices.size(0), fn,
          "dpo has " + std::to_string(dpo.indices.size(0)) + " positions, ref " + std::to_string(ref.indices.size(0)));
  const auto p_dpo = dpo.probs.detach(), p_ref = ref.probs.detach().to(p_dpo.scalar_type());
  // The floor comes from the DPO table for both models, as coded.
  const auto floor = std::get<0>(p_dpo.min(-1, /*keepdim=*/true)).clamp_min(kLogFloor);
  const auto match = dpo.indices.unsqueeze(-1).eq(ref.indices.unsqueeze(-2));  // [N, k_dpo, k_ref]
  const auto found = match.any(-1);
  const auto ref_at = (match.to(p_ref.scalar_type()) * p_ref.unsqueeze(-2)).sum(-1);
  const auto ref_tilde = at::where(found, ref_at.clamp_min(kLogFloor), floor.expand_as(ref_at));
  const auto advantage = p_dpo.clamp_min(kLogFloor).log() - ref_tilde.log();
  const auto [sorted, order] = advantage.sort(-1, /*descending=*/true);
  return {dpo.indices.gather(-1, order), sorted};
}

at::Tensor adpa_term(const at::Tensor& student_logits, const AdvantageTable& table, const AdpaOptions& options,
                     Communicator& g) {
  constexpr const char* fn = "adpa_term";
  require_logits(student_logits, fn, "student_logits");
  require_table(table.indices, table.advantages, fn, "table");
  require(table.indices.size(0) == student_logits.size(0), fn,
          "table has " + std::to_string(table.indices.size(0)) + " positions, student_logits " +
              std::to_string(student_logits.size(0)));
  require(!options.clamp_targets || options.scale == 1.0, fn,
          "scale must be 1 with clamp_targets (the released code has no β), got " + std::to_string(options.scale));
  const auto z = as_compute(student_logits);
  const auto ids = table.indices;
  const auto in_vocab = ids.ge(0).logical_and(ids.lt(z.size(1) * g.size()));
  const auto adv = table.advantages.detach().to(z.scalar_type());
  const auto a_named = adv.masked_fill(in_vocab.logical_not(), 0.0);
  const auto q_named = pick(log_softmax(z, g), ids, g).exp().masked_fill(in_vocab.logical_not(), 0.0);
  if (!options.clamp_targets) return -options.scale * (q_named * a_named).sum(-1);
  // As released: the advantage table goes through the same bin loader as a probability table, so the targets are
  // clamped like probabilities, and the rest bin's target is the (out-of-vocabulary) remainder.
  const auto a_rest = (adv - a_named).sum(-1);
  const auto q_rest = 1.0 - q_named.sum(-1);
  return -((clamp_prob(q_named) * clamp_prob(a_named)).sum(-1) + clamp_prob(q_rest) * clamp_prob(a_rest));
}

at::Tensor aligndistil(const at::Tensor& student_logits, const at::Tensor& dpo_logits, const at::Tensor& ref_logits,
                       const AlignDistilOptions& o, Communicator& g) {
  constexpr const char* fn = "aligndistil";
  require_logits(student_logits, fn, "student_logits");
  require_same(student_logits, dpo_logits, fn, "student_logits", "dpo_logits");
  require_same(student_logits, ref_logits, fn, "student_logits", "ref_logits");
  require(o.temperature > 0.0, fn, "temperature must be > 0, got " + std::to_string(o.temperature));
  require(o.beta > 0.0 && o.beta2 > 0.0, fn, "beta and beta2 must be > 0");
  const auto lq = log_softmax(as_compute(student_logits), g);
  const auto z_dpo = dpo_logits.detach().to(lq.scalar_type());
  const auto z_ref = ref_logits.detach().to(lq.scalar_type());

  // The token-adaptive weight w_t = β₂·Σ|p_dpo − p_ref| + 1e-3: [N, 1].
  const auto adaptive_weight = [&] {
    const auto d = vocab_sum((log_softmax(z_dpo, g).exp() - log_softmax(z_ref, g).exp()).abs(), g);
    return (o.beta2 * d + 1e-3).unsqueeze(-1);
  };
  at::Tensor synthetic, coefficient;  // z* [N, V/p] and the KL's factor ([N, 1] or a scalar)
  switch (o.mode) {
    case AlignDistilMode::aligndistil: {
      const auto w = adaptive_weight();
      synthetic = z_dpo + w * (z_dpo - z_ref);
      coefficient = o.beta / w;
      break;
    }
    case AlignDistilMode::theorem1: {
      const double w = o.beta / o.beta2;
      synthetic = w * z_dpo + (1.0 - w) * z_ref;
      coefficient = at::scalar_tensor(o.beta2, lq.options());
      break;
    }
    case AlignDistilMode::theorem1_contrast:
      synthetic = z_dpo + (o.beta / o.beta2) * (z_dpo - z_ref);
      coefficient = at::scalar_tensor(o.beta2, lq.options());
      break;
    case AlignDistilMode::theorem1_adaptive: {
      const auto w = adaptive_weight();
      synthetic = w * z_dpo + (1.0 - w) * z_ref;
      coefficient = o.beta / w;
      break;
    }
    default: throw std::invalid_argument("aligndistil: unknown mode");
  }
  const auto ls = log_softmax(synthetic / o.temperature, g);
  return coefficient.reshape({-1}) * reverse_kl_of(lq, ls, g);
}

at::Tensor chunked_token_loss(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& weights,
                              const ChunkGradTerm& term, Communicator& g, int64_t chunk, bool weight_grad_into_param) {
  constexpr const char* fn = "chunked_token_loss";
  require(hidden.defined() && hidden.dim() == 2, fn, "hidden must be [N, H], got " + shape(hidden));
  require(weight.defined() && weight.dim() == 2 && weight.size(1) == hidden.size(1), fn,
          "weight must be [V/p, H] with H = " + std::to_string(hidden.size(1)) + ", got " + shape(weight));
  require(weights.defined() && weights.dim() == 1 && weights.size(0) == hidden.size(0), fn,
          "weights must be [N] with N = " + std::to_string(hidden.size(0)) + ", got " + shape(weights));
  require(static_cast<bool>(term), fn, "term is empty");
  if (chunk <= 0) chunk = kernels::logits_chunk_rows(weight.size(0));

  const int64_t n = hidden.size(0);
  const auto logits_type = compute_type(weight);
  const bool grad_h = hidden.requires_grad(), grad_w = weight.requires_grad();
  const bool need_grad = at::GradMode::is_enabled() && (grad_h || grad_w);
  const auto h = hidden.detach(), w = weight.detach();
  const auto factors = weights.detach().to(logits_type);
  auto total = at::zeros({}, factors.options());
  at::Tensor grad_hidden = need_grad && grad_h ? at::zeros_like(h, at::MemoryFormat::Contiguous) : at::Tensor();
  at::Tensor grad_weight;
  const bool into_param = need_grad && grad_w && weight_grad_into_param;
  if (into_param) {
    // Straight into the parameter's .grad (gradient-accumulation fusion): no weight-sized buffer held from here
    // to the backward.
    auto param = weight;
    if (!param.grad().defined()) param.mutable_grad() = at::zeros_like(w, at::MemoryFormat::Contiguous);
    grad_weight = param.grad();
  } else if (need_grad && grad_w) {
    grad_weight = at::zeros_like(w, at::MemoryFormat::Contiguous);
  }

  // One logits buffer for every chunk: no chunk-sized allocation per chunk for the heap to fragment on.
  at::Tensor buffer;
  if (w.scalar_type() == logits_type) buffer = at::empty({std::min(chunk, n), w.size(0)}, w.options());
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t c = std::min(chunk, n - start);
    const auto h_chunk = h.narrow(0, start, c);
    const auto f = factors.narrow(0, start, c);
    // The term turns the logits into d(Σ f·term)/d(logits) in place.
    at::Tensor logits;
    if (buffer.defined()) {
      logits = buffer.narrow(0, 0, c);
      at::mm_out(logits, h_chunk, w.t());
    } else {
      logits = at::matmul(h_chunk, w.t()).to(logits_type).contiguous();
    }
    const auto value = term(logits, need_grad ? f : at::Tensor(), start, c);
    total.add_((f * value.detach()).sum());
    if (!need_grad || !logits.defined()) continue;
    const auto d_logits = logits.to(w.scalar_type());
    if (grad_hidden.defined()) grad_hidden.narrow(0, start, c).copy_(at::matmul(d_logits, w));
    if (grad_weight.defined()) grad_weight.addmm_(d_logits.t(), h_chunk);
  }
  if (!need_grad) return total;
  // Hidden states are replicated and each rank holds part of the vocabulary: the full gradient is the group's sum.
  if (grad_hidden.defined() && g.size() > 1) g.all_reduce(grad_hidden, runtime::ReduceOp::kSum);
  // Autograd takes no undefined tensor input: a frozen weight (LoRA's LM head) passes an empty placeholder.
  const auto none = at::empty({0}, w.options());
  return ChunkedLoss::apply(hidden, weight, total, grad_hidden.defined() ? grad_hidden : none,
                            grad_weight.defined() ? grad_weight : none, into_param);
}

at::Tensor chunked_token_loss(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& weights,
                              const ChunkTerm& term, Communicator& g, int64_t chunk) {
  require(static_cast<bool>(term), "chunked_token_loss", "term is empty");
  // Autograd on each chunk's small graph: the logits as a leaf → term → Σ f·term, differentiated at once and freed.
  const ChunkGradTerm by_autograd = [&term](at::Tensor& logits, const at::Tensor& f, int64_t start, int64_t n) {
    if (!f.defined()) {
      at::NoGradGuard no_grad;
      return term(logits, start, n);
    }
    const auto leaf = logits.detach().requires_grad_(true);
    const auto value = term(leaf, start, n);
    at::Tensor d;
    if (value.requires_grad())  // otherwise the term does not depend on the student
      d = torch::autograd::grad({(f * value).sum()}, {leaf}, {}, /*retain_graph=*/false, /*create_graph=*/false,
                                /*allow_unused=*/true)[0];
    logits = d;
    return value.detach();
  };
  return chunked_token_loss(hidden, weight, weights, by_autograd, g, chunk, false);
}

at::Tensor chunked_token_loss(const at::Tensor& hidden, model::LmHead& head, const at::Tensor& weights,
                              const ChunkTerm& term, Communicator& g, int64_t chunk) {
  return chunked_token_loss(hidden, head.weight(), weights, term, g, chunk);
}

at::Tensor chunked_token_loss(const at::Tensor& hidden, model::LmHead& head, const at::Tensor& weights,
                              const ChunkGradTerm& term, Communicator& g, int64_t chunk) {
  return chunked_token_loss(hidden, head.weight(), weights, term, g, chunk);
}

at::Tensor token_logprob_sum(const at::Tensor& hidden, model::LmHead& head, const at::Tensor& labels, Communicator& g,
                             int64_t chunk, double loss_scale) {
  const auto flat_h = hidden.reshape({-1, hidden.size(-1)});
  const auto flat_l = labels.reshape({-1});
  const auto rows = flat_l.ne(model::kIgnoreIndex).nonzero().squeeze(1);
  const auto h = flat_h.index_select(0, rows);
  const auto l = flat_l.index_select(0, rows);
  const auto weight = head.weight();
  const int64_t vocab_start = g.rank() * weight.size(0);
  const auto shards = parallel::shard_reduce(g);
  const ChunkGradTerm term = [&](at::Tensor& logits, const at::Tensor& grad_weights, int64_t start, int64_t n) {
    return kernels::token_logprob_rows(logits, l.narrow(0, start, n), vocab_start, grad_weights, shards);
  };
  const bool fused = loss_scale != 0.0;
  const auto factors = at::full({h.size(0)}, fused ? loss_scale : 1.0, h.options().dtype(at::kFloat));
  return chunked_token_loss(h, weight, factors, term, g, chunk, fused);
}

}  // namespace aligntrain::objectives
