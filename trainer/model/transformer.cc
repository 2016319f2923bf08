// See transformer.h.
#include "trainer/model/transformer.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace aligntrain::model {

at::Tensor activate(Activation activation, const at::Tensor& x) {
  switch (activation) {
    case Activation::kSilu: return at::silu(x);
  }
  throw std::logic_error("unknown activation");
}

Mlp::Mlp(const ModelConfig& c, LayerFactory& f) : activation_(c.activation) {
  gate_proj = register_module("gate_proj", f.column(c.hidden_size, c.intermediate_size, c.mlp_bias));
  up_proj = register_module("up_proj", f.column(c.hidden_size, c.intermediate_size, c.mlp_bias));
  down_proj = register_module("down_proj", f.row(c.intermediate_size, c.hidden_size, c.mlp_bias));
}

at::Tensor Mlp::forward(const at::Tensor& x) {
  return down_proj->forward(activate(activation_, gate_proj->forward(x)) * up_proj->forward(x));
}

DecoderLayer::DecoderLayer(const ModelConfig& c, LayerFactory& f) {
  input_layernorm = register_module("input_layernorm", std::make_shared<RMSNorm>(c.hidden_size, c.rms_norm_eps));
  self_attn = register_module("self_attn", std::make_shared<Attention>(c, f));
  post_attention_layernorm =
      register_module("post_attention_layernorm", std::make_shared<RMSNorm>(c.hidden_size, c.rms_norm_eps));
  mlp = register_module("mlp", std::make_shared<Mlp>(c, f));
}

at::Tensor DecoderLayer::forward(const at::Tensor& x, const AttentionContext& ctx) {
  const auto h = x + self_attn->forward(input_layernorm->forward(x), ctx);
  return h + mlp->forward(post_attention_layernorm->forward(h));
}

DecoderModel::DecoderModel(const ModelConfig& c, LayerFactory& f) {
  embed_tokens = register_module("embed_tokens", f.embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_layers; ++i) {
    layer_list.push_back(std::make_shared<DecoderLayer>(c, f));
    layer_list.back()->self_attn->set_layer_index(i);
    layers->push_back(layer_list.back());
  }
  norm = register_module("norm", std::make_shared<RMSNorm>(c.hidden_size, c.rms_norm_eps));
}

CausalLM::CausalLM(const ModelConfig& c, LayerFactory& f) : config_(c), inv_freq_(rope_inv_freq(c)) {
  model = register_module("model", std::make_shared<DecoderModel>(c, f));
  lm_head = register_module(
      "lm_head", f.lm_head(c.hidden_size, c.vocab_size, c.tie_word_embeddings ? model->embed_tokens : nullptr));
  // The parameter set follows the name table; every module parameter must be in it exactly once.
  auto named = named_parameters(/*recurse=*/true);
  const auto table = hf_tensor_table(c);
  if (table.size() != named.size()) {
    throw std::logic_error("model has " + std::to_string(named.size()) + " parameters but the name table lists " +
                           std::to_string(table.size()));
  }
  for (const auto& spec : table) {
    const at::Tensor* t = named.find(spec.name);
    if (t == nullptr) throw std::logic_error("model has no parameter " + spec.name);
    params_.add({spec, *t, /*trainable=*/true, default_decay(spec.shape)});
  }
}

at::Tensor CausalLM::add_parameter(const TensorSpec& spec, const at::Tensor& local, bool trainable) {
  if (params_.find(spec.name)) throw std::logic_error("parameter " + spec.name + " is registered twice");
  std::string key = "extra_" + spec.name;  // module keys may not contain dots
  for (char& ch : key)
    if (ch == '.') ch = '_';
  at::Tensor t = register_parameter(key, local, /*requires_grad=*/trainable);
  params_.add({spec, t, trainable, default_decay(spec.shape)});
  return t;
}

at::ScalarType CausalLM::dtype() const { return model->norm->weight.scalar_type(); }

AttentionContext CausalLM::make_context(const ForwardInput& in, const at::Tensor& hidden) const {
  const int64_t b = in.input_ids.size(0), t = in.input_ids.size(1);
  const auto dev = in.input_ids.device();
  const auto positions =
      in.position_ids ? *in.position_ids : at::arange(t, at::TensorOptions().dtype(at::kLong).device(dev)).expand({b, t});
  AttentionContext ctx;
  ctx.rope = rope_tables(inv_freq_, positions, hidden.scalar_type());
  const bool window = config_.sliding_window && t > *config_.sliding_window;
  if (!in.attention_mask && !in.segment_ids && !window) return ctx;  // plain causal: the fast SDPA path

  const auto idx = at::arange(t, at::TensorOptions().dtype(at::kLong).device(dev));
  const auto q = idx.view({t, 1}), k = idx.view({1, t});
  auto mask = (k <= q).unsqueeze(0);  // [1, T, T] (query, key)
  if (window) mask = mask.logical_and((q - k < *config_.sliding_window).unsqueeze(0));
  if (in.segment_ids) mask = mask.logical_and(in.segment_ids->unsqueeze(2) == in.segment_ids->unsqueeze(1));
  if (in.attention_mask) mask = mask.logical_and(in.attention_mask->to(at::kBool).unsqueeze(1));
  // A query that may see no key (a padding position) attends to itself, so no row is all -inf (NaN in softmax).
  mask = mask.logical_or(at::eye(t, at::TensorOptions().dtype(at::kBool).device(dev)).unsqueeze(0));
  ctx.mask = mask.unsqueeze(1);  // [B, 1, T, T]
  return ctx;
}

namespace {
thread_local bool t_checkpointed_forward = false;
}  // namespace

bool in_checkpointed_forward() { return t_checkpointed_forward; }

namespace {

// Activation checkpointing for one decoder layer: forward without keeping activations; backward recomputes the
// layer with gradients and returns the gradients of the input and of every layer parameter.
class CheckpointedLayer : public torch::autograd::Function<CheckpointedLayer> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                                                DecoderLayer* layer, const AttentionContext& actx,
                                                at::TensorList params) {
    ctx->saved_data["layer"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(layer));
    ctx->saved_data["cos"] = actx.rope.cos;
    ctx->saved_data["sin"] = actx.rope.sin;
    ctx->saved_data["causal"] = actx.causal;
    if (actx.mask) ctx->saved_data["mask"] = *actx.mask;
    if (actx.tokens) {
      ctx->saved_data["tokens"] = *actx.tokens;
      if (actx.gather) ctx->saved_data["gather"] = *actx.gather;
      ctx->saved_data["batch"] = actx.batch;
      ctx->saved_data["length"] = actx.length;
    }
    ctx->save_for_backward({x});
    // The generator state of x's device, so that the recompute draws the same random numbers (LoRA dropout).
    ctx->saved_data["rng"] = at::globalContext().defaultGenerator(x.device()).get_state();
    t_checkpointed_forward = true;
    at::Tensor y;
    try {
      y = layer->forward(x, actx);
    } catch (...) {
      t_checkpointed_forward = false;
      throw;
    }
    t_checkpointed_forward = false;
    return {y};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto* layer = reinterpret_cast<DecoderLayer*>(static_cast<intptr_t>(ctx->saved_data["layer"].toInt()));
    AttentionContext actx;
    actx.rope = {ctx->saved_data["cos"].toTensor(), ctx->saved_data["sin"].toTensor()};
    actx.causal = ctx->saved_data["causal"].toBool();
    if (ctx->saved_data.count("mask")) actx.mask = ctx->saved_data["mask"].toTensor();
    if (ctx->saved_data.count("tokens")) {
      actx.tokens = ctx->saved_data["tokens"].toTensor();
      if (ctx->saved_data.count("gather")) actx.gather = ctx->saved_data["gather"].toTensor();
      actx.batch = ctx->saved_data["batch"].toInt();
      actx.length = ctx->saved_data["length"].toInt();
    }
    const auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    const auto params = layer->parameters();
    at::Tensor y;
    {
      at::AutoGradMode grad(true);
      auto gen = at::globalContext().defaultGenerator(x.device());
      const at::Tensor now = gen.get_state();
      gen.set_state(ctx->saved_data["rng"].toTensor());
      y = layer->forward(x, actx);
      gen.set_state(now);
    }
    torch::autograd::variable_list inputs{x};
    for (const auto& p : params) {
      if (p.requires_grad()) inputs.push_back(p);
    }
    auto grads = torch::autograd::grad({y}, inputs, {grad_out[0]}, /*retain_graph=*/false,
                                       /*create_graph=*/false, /*allow_unused=*/true);
    // One gradient per forward argument: x, layer (none), context (none), then each parameter.
    torch::autograd::variable_list out{grads[0], at::Tensor(), at::Tensor()};
    size_t next = 1;
    for (const auto& p : params) out.push_back(p.requires_grad() ? grads[next++] : at::Tensor());
    return out;
  }
};

// Which positions of a [B, T] batch go through the position-wise work (AttentionContext::tokens, ::gather): none
// (all of them) for a batch without padding or shared prefixes.
struct TokenLayout {
  std::optional<at::Tensor> tokens, gather;
};

TokenLayout token_layout(const ForwardInput& in) {
  TokenLayout out;
  if (!in.shared_prefix) {
    if (in.attention_mask) {
      const auto real = in.attention_mask->reshape({-1}).nonzero().squeeze(1);
      if (real.size(0) < in.attention_mask->numel()) out.tokens = real;
    }
    return out;
  }
  if (in.segment_ids) throw std::logic_error("hidden_states: shared_prefix cannot be combined with segment_ids");
  const int64_t b = in.input_ids.size(0), t = in.input_ids.size(1), n = b * t;
  const auto dev = in.input_ids.device();
  const auto lopt = at::TensorOptions().dtype(at::kLong).device(dev);
  const auto real = in.attention_mask ? in.attention_mask->reshape({-1}).ne(0)
                                      : at::ones({n}, at::TensorOptions().dtype(at::kBool).device(dev));
  const auto col = at::arange(t, lopt).view({1, t});
  const auto own = at::arange(n, lopt);
  const auto src = in.shared_prefix->row.to(dev).view({b, 1}) * t + col;
  const auto home = at::where(col < in.shared_prefix->length.to(dev).view({b, 1}), src, own.view({b, t})).reshape({-1});
  const auto is_home = real.logical_and(home == own);
  // Every real position's token must be a real position of its own row with the same id.
  const auto ids = in.input_ids.reshape({-1});
  const auto ok = is_home.index_select(0, home).logical_and(ids.index_select(0, home) == ids).logical_or(real.logical_not());
  if (!ok.all().item<bool>())
    throw std::logic_error("hidden_states: shared_prefix names a row whose tokens differ or that shares itself");
  const auto tokens = is_home.nonzero().squeeze(1);
  const int64_t count = tokens.size(0);
  auto index = at::full({n}, count, lopt);
  index.index_put_({tokens}, at::arange(count, lopt));
  out.gather = at::where(real, index.index_select(0, home), at::full({n}, count, lopt));
  out.tokens = tokens;
  return out;
}

}  // namespace

at::Tensor CausalLM::hidden_states(const ForwardInput& in) {
  const int64_t b = in.input_ids.size(0), t = in.input_ids.size(1);
  // Padding-free when the batch has padding or shared prefixes: embedding, norms, projections and MLPs (nearly all
  // the work) run on the real, distinct tokens only; attention restores the padded layout it masks. Padding
  // positions come out as zeros.
  const TokenLayout layout = token_layout(in);
  const auto& tokens = layout.tokens;
  auto h = model->embed_tokens->forward(tokens ? in.input_ids.reshape({-1}).index_select(0, *tokens) : in.input_ids);
  AttentionContext ctx = make_context(in, h);
  if (tokens) {
    ctx.tokens = tokens;
    ctx.gather = layout.gather;
    ctx.batch = b;
    ctx.length = t;
  }
  const bool recompute = checkpointing_ && at::GradMode::is_enabled();
  for (auto& layer : model->layer_list) {
    if (recompute) {
      const auto params = layer->parameters();
      h = CheckpointedLayer::apply(h, layer.get(), ctx, at::TensorList(params))[0];
    } else {
      h = layer->forward(h, ctx);
    }
  }
  h = model->norm->forward(h);
  if (!tokens) return h;
  return (layout.gather ? gather_tokens(h, *layout.gather) : pad_tokens(h, *tokens, b * t)).view({b, t, h.size(-1)});
}

}  // namespace aligntrain::model

namespace aligntrain::model {

KvCache CausalLM::new_cache(int64_t batch, int64_t capacity) const {
  KvCache cache;
  const auto& w = model->norm->weight;
  for (const auto& layer : model->layer_list) {
    const auto& attn = *layer->self_attn;
    const auto shape = std::vector<int64_t>{batch, attn.local_kv_heads(), capacity, attn.head_dim()};
    cache.layers.push_back({at::zeros(shape, w.options()), at::zeros(shape, w.options())});
  }
  return cache;
}

at::Tensor CausalLM::hidden_states_cached(const at::Tensor& input_ids, const at::Tensor& positions,
                                          const at::Tensor& key_valid, KvCache& cache) {
  const int64_t t = input_ids.size(1), past = cache.length, s = past + t;
  if (s > cache.capacity()) throw std::out_of_range("KV cache of " + std::to_string(cache.capacity()) +
                                                    " positions cannot take " + std::to_string(s));
  auto h = model->embed_tokens->forward(input_ids);
  const auto dev = input_ids.device();
  AttentionContext ctx;
  ctx.rope = rope_tables(inv_freq_, positions, h.scalar_type());
  ctx.cache = &cache;
  // Query i sits in slot past + i; it sees earlier slots that hold real tokens (and, under a sliding window, only
  // the last `window` of them: slots are contiguous per row, so slot distance is position distance) and itself.
  const auto q = at::arange(past, s, at::TensorOptions().dtype(at::kLong).device(dev)).view({t, 1});
  const auto k = at::arange(s, at::TensorOptions().dtype(at::kLong).device(dev)).view({1, s});
  auto mask = (k <= q).unsqueeze(0).logical_and(key_valid.to(at::kBool).unsqueeze(1));  // [B, T, S]
  if (config_.sliding_window) mask = mask.logical_and((q - k < *config_.sliding_window).unsqueeze(0));
  mask = mask.logical_or((k == q).unsqueeze(0));
  ctx.mask = mask.unsqueeze(1);
  for (auto& layer : model->layer_list) h = layer->forward(h, ctx);
  cache.length = s;
  return model->norm->forward(h);
}

}  // namespace aligntrain::model
