// See memory_plan.h. Every term below was held against the measured CPU peak (runtime/cpu_memory.h) of each moment
// of a step; the notation: p = tensor-parallel degree; b = bytes per element of the policy (4 fp32, 2 bf16), b' of a
// frozen model; H hidden, I = intermediate/p, q = heads·head_dim/p, kv = kv_heads·head_dim/p, V = vocabulary/p, L
// layers, T = max_length; N = rows·T tokens of one micro-batch forward, n = rows·(T − 1) positions that predict a
// token (every row full and labelled: the worst case); chunk = logits_budget / 4V rows, c = min(chunk, n); a
// "block" is the ~2 MiB of logits rows that the LM-head kernels work on at a time.
//
//   resident   W = P·b weights, O = 8·P (AdamW moments; + 4·P fp32 master weights with bf16), O/dp under ZeRO-1,
//              F = Σ P'·b' of the live frozen models; P = the parameters of the rank's shard.
//   gradients  G = P·b, from a step's backward to the optimizer step (the loop drops them at each step's start), so
//              a forward holds them only from the second micro-batch of an accumulating step on.
//   activations (autograd's saved tensors), per token and layer:
//              b·(6H + 3q + 2kv + 4I) + 4·(heads/p) + 8 + 4·T: the layer input, both norms' normalised values and
//              outputs and the residual sum (6H); rotated q, the attention output and, in a padded batch, its
//              unpadded copy (3q); rotated k and v (2kv); the MLP's gate, SiLU, up and product (4I); attention's
//              fp32 log-sum-exp, the norms' fp32 1/rms, and the fp32 attention mask of a padded or packed batch
//              (rows·T² floats per layer, 4·T per token). Plus the final norm's input and normalised value
//              (2H·b + 4), the final hidden states (H·b) and the rotary tables (2·head_dim·b). Activation
//              checkpointing keeps a layer's input (H·b) and the bool mask; the backward recomputes one layer.
//              Rows of unequal length make a padded batch; the plan takes every row full with the padded batch's
//              mask and copy, an upper bound that a batch padded by a few tokens reaches within a few per cent.
//   LM head    a [c, V] fp32 logits buffer with a block of temporaries (or, with bf16 weights, the bf16 product
//              it is converted from); the hidden rows at labelled positions [n, H] and their gradient; the head's
//              weight gradient V·H·b.
//   frozen forward (no autograd): a layer holds at most its input, the attention residual, the norm output, the
//              MLP's four values and its output, N·b'·(4H' + 4I'), or its attention's q, k, v, output and fp32
//              mask; the LM head its hidden rows and a [c', V'] chunk with a block of temporaries.
//
//   peak = W + O + F + the largest of a step's moments (what is held above the resident state then):
//     sft            LM-head forward: A + the hidden rows, their gradient, the weight gradient (formed here, its
//                    scale known), the buffer and a block
//     preference     LM-head forward: A + the hidden rows + buffer + block; kept for the backward: the hidden rows
//                    and, when all n rows fit one chunk, the logits [n, V]; each live reference's forward on top of
//                    that; backward: A + kept + the weight gradient + the rows' gradient (+ the chunk's gradient
//                    in the bf16 weights' dtype)
//     distill        the NLL (kept when it trains: rows' and weight gradients), the student's rows, each live
//                    teacher's forward, then the divergence: the teacher's rows and [c, V'] logits (its dtype), the
//                    student's gradients and fp32 chunk with six blocks of the KD kernel's temporaries
//     optimizer      G + the clip's fp64 slices of the largest tensor (16 bytes × min(its elements, 4M)); AdamW's
//                    per-tensor temporaries are a quarter of that
//     all-reduce     with data parallelism, G + one bucket of packed gradients (parallel.bucket_mb, or the largest
//                    tensor); the bucket that fires last finds the activations freed
//     evaluation     with data.eval, G + the policy's forward without autograd (or the student's hidden states and
//                    a frozen model's forward)
//     precompute     a precomputed model's weights and forward, before the policy loads (instead of W + O + F)
//     reward model   online stages: G + a reward model's forward (its weights are in F, with a score head)
// LoRA (adapter_params ≥ 0): W adds the adapters, G and O count the adapters only, and the LM head's weight
// gradient is never formed; `reference: base` is the policy itself (no F).
// Not counted: the CUDA caching allocator's reserve and fragmentation, and memory that is not a tensor (data, the
// heap's slack). GKD's on-policy sampling (distill with lmbda > 0) holds G and a KV cache, below the moments above.
#include "trainer/cli/memory_plan.h"

#include <algorithm>
#include <utility>

namespace aligntrain::cli {

namespace {

constexpr double kBlockBytes = 2.0 * 1024 * 1024;  // the LM-head kernels' row blocks (kernels/*.cc)

// Per-rank sizes of a model under tensor parallelism of degree p.
struct Shape {
  double H, q, kv, I, V, heads, L, head_dim;
  Shape(const model::ModelConfig& c, int p)
      : H(static_cast<double>(c.hidden_size)),
        q(static_cast<double>(c.num_heads * c.head_dim) / p),
        kv(static_cast<double>(c.num_kv_heads * c.head_dim) / p),
        I(static_cast<double>(c.intermediate_size) / p),
        V(static_cast<double>(c.vocab_size) / p),
        heads(static_cast<double>(c.num_heads) / p),
        L(static_cast<double>(c.num_layers)),
        head_dim(static_cast<double>(c.head_dim)) {}
};

// Parameters on one rank: projections, embedding and LM head sharded; norms (and row-parallel biases) replicated.
double rank_parameters(const model::ModelConfig& c, int p) {
  const Shape s(c, p);
  const double bias_qkv = c.qkv_bias() ? s.q + 2 * s.kv : 0.0;
  const double attn = 2 * s.H * s.q + 2 * s.H * s.kv + bias_qkv + (c.attention_bias ? s.H : 0.0) +
                      (c.qk_norm() ? 2 * s.head_dim : 0.0);
  const double mlp = 3 * s.H * s.I + (c.mlp_bias ? 2 * s.I + s.H : 0.0);
  const double embed = s.V * s.H;
  return embed + s.L * (attn + mlp + 2 * s.H) + s.H + (c.tie_word_embeddings ? 0.0 : embed);
}

// A reward model's parameters on one rank: the decoder and embedding (as rank_parameters) with a one-label score
// head [1, H] instead of the LM head.
double scorer_parameters(const model::ModelConfig& c, int p) {
  model::ModelConfig tied = c;
  tied.tie_word_embeddings = true;
  return rank_parameters(tied, p) + static_cast<double>(c.hidden_size);
}

// The largest single tensor of a rank's shard (elements): the embedding or LM head, or an MLP projection.
double largest_tensor(const model::ModelConfig& c, int p) {
  const Shape s(c, p);
  return std::max({s.V * s.H, s.H * s.I, s.H * s.q});
}

// Bytes per token that one decoder layer keeps for the backward, in a padded batch of rows of T positions.
double layer_kept_per_token(const Shape& s, double b, double T) {
  return b * (6 * s.H + 3 * s.q + 2 * s.kv + 4 * s.I) + 4 * s.heads + 8 + 4 * T;
}

// Logits rows per chunk for a vocabulary shard of V columns under the budget (kernels::logits_chunk_rows).
double chunk_rows(double V, int64_t budget) {
  return std::max(1.0, static_cast<double>(budget / std::max<int64_t>(1, static_cast<int64_t>(V) * 4)));
}

// A block of [rows, V] fp32 logits rows (at most `rows`).
double block_bytes(double V, double rows) {
  return std::min(rows, std::max(1.0, static_cast<double>(static_cast<int64_t>(kBlockBytes / (4 * V))))) * 4 * V;
}

}  // namespace

StageMemory plan_stage_memory(const StageMemoryWork& w) {
  StageMemory m;
  const Shape s(w.policy, w.tp);
  const double b = w.bytes;
  const double params = rank_parameters(w.policy, w.tp);
  const bool lora = w.adapter_params >= 0;
  const double trained = lora ? w.adapter_params : params;  // LoRA: only the adapters have gradients and AdamW state
  m.weights = (params + (lora ? w.adapter_params : 0.0)) * b;
  m.gradients = trained * b;
  m.optimizer = trained * (8.0 + (w.master_weights ? 4.0 : 0.0)) / (w.zero1 ? static_cast<double>(w.dp) : 1.0);
  for (const auto& f : w.live) m.frozen += rank_parameters(f.config, w.tp) * f.bytes;
  for (const auto& f : w.scorers) m.frozen += scorer_parameters(f.config, w.tp) * f.bytes;

  const double T = static_cast<double>(w.max_length), rows = static_cast<double>(w.rows);
  const double N = rows * T;
  const double n = rows * std::max(0.0, T - 1);
  const double chunk = chunk_rows(s.V, w.logits_budget_bytes);
  const double c = std::min(chunk, n);
  // The chunk's fp32 logits, then a block of temporaries (or, with bf16 weights, the bf16 product they came from).
  const double bf16_product = b == 4 ? 0.0 : b * c * s.V;
  const double head_buffer = 4 * c * s.V + std::max(block_bytes(s.V, c), bf16_product);
  const double rope = N * 2 * s.head_dim * b;
  const double final_norm = N * (2 * s.H * b + 4);
  const double per_layer = N * layer_kept_per_token(s, b, T);
  m.activations = w.checkpointing ? s.L * N * s.H * b + N * T + final_norm + rope : s.L * per_layer + final_norm + rope;
  const double A = m.activations;
  const double hidden = N * s.H * b;  // the final hidden states [N, H]
  const double rows_h = n * s.H * b;  // the hidden rows at labelled positions [n, H] (or their gradient)
  const double head_grad = lora ? 0.0 : s.V * s.H * b;  // LoRA: the LM head is frozen
  const double held_grads = w.accumulation > 1 ? m.gradients : 0.0;
  const double new_head_grad = w.accumulation > 1 ? 0.0 : head_grad;  // inside G when gradients are held
  const double recompute = w.checkpointing ? per_layer : 0.0;         // the layer the backward recomputes
  // The data-parallel all-reduce packs one bucket of gradients at a time (a tensor larger than the bucket alone).
  const double dp_bucket =
      w.dp > 1 ? std::min(m.gradients, std::max(static_cast<double>(w.bucket_bytes),
                                                (lora ? 0.0 : largest_tensor(w.policy, w.tp)) * b))
               : 0.0;

  // A frozen model's forward over the micro-batch (no autograd): its largest layer moment or its LM head.
  auto frozen_forward = [&](const FrozenModel& f) {
    const Shape fs(f.config, w.tp);
    const double fb = f.bytes;
    const double mlp = N * fb * (4 * fs.H + 4 * fs.I);
    const double attention = N * fb * (3 * fs.H + 2 * fs.q + 2 * fs.kv) + rows * T * T * 4;
    const double fc = std::min(chunk_rows(fs.V, w.logits_budget_bytes), n);
    const double head = N * fs.H * fb + n * fs.H * fb + 4 * fc * fs.V +
                        std::max(block_bytes(fs.V, fc), fb == 4 ? 0.0 : fb * fc * fs.V);
    return N * 2 * fs.head_dim * fb + std::max({mlp, attention, head});
  };
  // A reward model's forward: a decoder layer's moment (its score head reads one position per row).
  auto scorer_forward = [&](const FrozenModel& f) {
    const Shape fs(f.config, w.tp);
    const double fb = f.bytes;
    const double mlp = N * fb * (4 * fs.H + 4 * fs.I);
    const double attention = N * fb * (3 * fs.H + 2 * fs.q + 2 * fs.kv) + rows * T * T * 4;
    return N * 2 * fs.head_dim * fb + std::max({mlp, attention, N * fs.H * fb});
  };

  std::vector<std::pair<std::string, double>> moments;  // bytes held above W + O + F
  moments.emplace_back("optimizer step",
                       m.gradients + 16.0 * std::min(lora ? w.adapter_params : largest_tensor(w.policy, w.tp), 4194304.0));
  if (w.dp > 1) moments.emplace_back("gradient all-reduce", m.gradients + dp_bucket);
  if (w.evaluates) {  // after the last optimizer step, gradients still held: the policy's and frozen forwards
    double eval = frozen_forward({w.policy, b});
    for (const auto& f : w.live) eval = std::max(eval, hidden + frozen_forward(f));
    moments.emplace_back("evaluation", m.gradients + eval);
  }
  for (const auto& f : w.scorers) moments.emplace_back("reward model forward", m.gradients + scorer_forward(f));
  switch (w.path) {
    case LossPath::kSft:
      moments.emplace_back("lm-head forward", held_grads + A + hidden + 2 * rows_h + new_head_grad + head_buffer);
      // An online stage's live reference (GRPO's KL term) runs while the policy's activations are held.
      for (const auto& f : w.live) moments.emplace_back("reference forward", held_grads + A + hidden + frozen_forward(f));
      moments.emplace_back("backward",
                           held_grads + A + new_head_grad + rows_h + 2 * hidden + recompute);
      break;
    case LossPath::kResponses: {
      const double keeps = rows_h + (n <= chunk ? 4 * n * s.V : 0.0);  // the rows (and the one chunk's logits)
      moments.emplace_back("lm-head forward", held_grads + A + hidden + rows_h + head_buffer);
      for (const auto& f : w.live) moments.emplace_back("reference forward", held_grads + A + keeps + frozen_forward(f));
      moments.emplace_back("backward", held_grads + A + keeps + new_head_grad + rows_h + hidden +
                                           (n <= chunk ? bf16_product : head_buffer) + recompute);
      break;
    }
    case LossPath::kDistill: {
      // The student's final hidden states live through the whole loss; a training NLL keeps its gradients.
      const double nll_keeps = w.distill_nll_grad ? rows_h + head_grad : 0.0;
      const double base = held_grads + A + hidden;
      moments.emplace_back("nll", base + rows_h + head_buffer + nll_keeps);
      double teacher_rows = 0, teacher_buffer = 0;
      for (const auto& f : w.live) {
        const Shape fs(f.config, w.tp);
        moments.emplace_back("teacher forward", base + nll_keeps + rows_h + teacher_rows + frozen_forward(f));
        teacher_rows += n * fs.H * f.bytes;
        teacher_buffer = std::max(teacher_buffer, f.bytes * c * fs.V);  // its logits in its own dtype
      }
      // The student's fp32 chunk with kernels::kd_divergence_rows' six blocks of temporaries, or then its gradient
      // in the bf16 weights' dtype.
      const double kd_chunk = 4 * c * s.V + std::max(6 * block_bytes(s.V, c), bf16_product);
      moments.emplace_back("divergence", base + nll_keeps + rows_h + teacher_rows + teacher_buffer + rows_h +
                                             new_head_grad + kd_chunk);
      moments.emplace_back("backward", base + nll_keeps + 2 * rows_h + teacher_rows + new_head_grad + hidden +
                                           recompute);
      break;
    }
  }
  const double resident = m.weights + m.optimizer + m.frozen;
  for (const auto& [name, bytes] : moments) {
    if (bytes > m.moment) {
      m.moment = bytes;
      m.phase = name;
    }
  }
  m.peak = resident + m.moment;
  // Precomputed models run one at a time before the policy and the live models are loaded.
  for (const auto& f : w.precomputed) {
    const double pre = rank_parameters(f.config, w.tp) * f.bytes + frozen_forward(f);
    if (pre > m.peak) {
      m.peak = pre;
      m.phase = "precompute";
    }
  }
  return m;
}

}  // namespace aligntrain::cli
