// See lora.h.
#include "trainer/model/lora.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <map>
#include <stdexcept>

#include "data/dealing.h"

namespace aligntrain::model {

namespace {

const std::string kA = ".lora_A.weight", kB = ".lora_B.weight";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The slot of `module` in a decoder layer, with its full [out, in] sizes.
struct Slot {
  std::shared_ptr<Projection>* member;
  torch::nn::Module* parent;
  std::string path;  // "self_attn.q_proj"
  int64_t in, out;
};

Slot slot_of(DecoderLayer& layer, const ModelConfig& c, const std::string& module) {
  auto& a = *layer.self_attn;
  auto& m = *layer.mlp;
  const int64_t h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim,
                im = c.intermediate_size;
  if (module == "q_proj") return {&a.q_proj, &a, "self_attn.q_proj", h, q};
  if (module == "k_proj") return {&a.k_proj, &a, "self_attn.k_proj", h, kv};
  if (module == "v_proj") return {&a.v_proj, &a, "self_attn.v_proj", h, kv};
  if (module == "o_proj") return {&a.o_proj, &a, "self_attn.o_proj", q, h};
  if (module == "gate_proj") return {&m.gate_proj, &m, "mlp.gate_proj", h, im};
  if (module == "up_proj") return {&m.up_proj, &m, "mlp.up_proj", h, im};
  if (module == "down_proj") return {&m.down_proj, &m, "mlp.down_proj", im, h};
  throw std::logic_error("unknown LoRA target " + module);
}

template <class F>
void for_each_lora(const CausalLM& model, F&& f) {
  for (const auto& layer : model.model->layer_list) {
    for (const auto& module : all_linear_targets()) {
      std::shared_ptr<Projection> p;
      if (module == "q_proj") p = layer->self_attn->q_proj;
      else if (module == "k_proj") p = layer->self_attn->k_proj;
      else if (module == "v_proj") p = layer->self_attn->v_proj;
      else if (module == "o_proj") p = layer->self_attn->o_proj;
      else if (module == "gate_proj") p = layer->mlp->gate_proj;
      else if (module == "up_proj") p = layer->mlp->up_proj;
      else p = layer->mlp->down_proj;
      if (auto lora = std::dynamic_pointer_cast<LoraProjection>(p)) f(*lora);
    }
  }
}

}  // namespace

double LoraSettings::scaling() const {
  return rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

const std::vector<std::string>& all_linear_targets() {
  static const std::vector<std::string> names = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                 "gate_proj", "up_proj", "down_proj"};
  return names;
}

bool is_column_target(const std::string& m) { return m != "o_proj" && m != "down_proj"; }

bool is_adapter_name(const std::string& name) { return ends_with(name, kA) || ends_with(name, kB); }

LoraProjection::LoraProjection(std::shared_ptr<Projection> base_proj, at::Tensor a, at::Tensor b, double scaling,
                               double dropout, LoraMapping after_a, InputShard shard)
    : scaling_(scaling), dropout_(dropout), after_a_(std::move(after_a)), shard_(shard) {
  base = register_module("base_layer", std::move(base_proj));
  lora_A = register_parameter("lora_A", std::move(a));
  lora_B = register_parameter("lora_B", std::move(b));
}

at::Tensor LoraProjection::forward(const at::Tensor& x) {
  auto y = base->forward(x);
  if (!enabled_) return y;
  auto in = x.to(lora_A.scalar_type());
  // Dropout only while training (gradients on, or a checkpointed layer's forward); it draws from the device's default
  // generator, which checkpoints save.
  if (dropout_ > 0 && (at::GradMode::is_enabled() || in_checkpointed_forward())) in = dropout(in);
  auto u = at::linear(in, lora_A);
  if (after_a_) u = after_a_(u);
  return y + (at::linear(u, lora_B) * scaling_).to(y.scalar_type());
}

at::Tensor LoraProjection::dropout(const at::Tensor& x) const {
  // As at::dropout computes it on the CPU (empty, bernoulli_(1 − p), div_(1 − p), multiply), over the full width.
  auto shape = x.sizes().vec();
  const int64_t width = shape.back();
  shape.back() = width * shard_.size;
  auto mask = at::empty(shape, x.options()).bernoulli_(1.0 - dropout_).div_(1.0 - dropout_);
  if (shard_.size > 1) mask = mask.narrow(-1, shard_.rank * width, width);
  return x * mask;
}

void attach_lora(CausalLM& model, const LoraSettings& s, int64_t tp_rank, int64_t tp_size,
                 const LoraMappings& mappings) {
  if (has_lora(model)) throw std::logic_error("the model already has LoRA adapters");
  model.parameter_set().set_trainable([](const Parameter&) { return true; }, false);
  const auto opts = at::TensorOptions().dtype(model.dtype()).device(model.model->norm->weight.device());
  const ModelConfig& c = model.config();
  for (size_t i = 0; i < model.model->layer_list.size(); ++i) {
    auto& layer = *model.model->layer_list[i];
    for (const auto& module : all_linear_targets()) {
      if (std::find(s.targets.begin(), s.targets.end(), module) == s.targets.end()) continue;
      Slot slot = slot_of(layer, c, module);
      const bool column = is_column_target(module);
      const std::string prefix = "model.layers." + std::to_string(i) + "." + slot.path;
      TensorSpec a{prefix + kA, {s.rank, slot.in}, column ? Split::kReplicated : Split::kColumns, Init::kNormal};
      TensorSpec b{prefix + kB, {slot.out, s.rank}, column ? Split::kRows : Split::kReplicated, Init::kZeros};
      auto wrapped = std::make_shared<LoraProjection>(*slot.member, at::zeros(local_shape(a, tp_size), opts),
                                                      at::zeros(local_shape(b, tp_size), opts), s.scaling(),
                                                      s.dropout, column ? mappings.column : mappings.row,
                                                      column ? InputShard{} : InputShard{tp_rank, tp_size});
      slot.parent->replace_module(module, wrapped);
      *slot.member = wrapped;
      model.parameter_set().add({a, wrapped->lora_A, true, default_decay(a.shape)});
      model.parameter_set().add({b, wrapped->lora_B, true, default_decay(b.shape)});
    }
  }
}

void init_lora(CausalLM& model, const LoraSettings& s, uint64_t seed, int64_t tp_rank, int64_t tp_size) {
  at::NoGradGuard no_grad;
  uint64_t index = 0;
  for (const auto& p : model.parameter_set()) {
    if (!is_adapter_name(p.name())) continue;
    ++index;
    at::Tensor full;
    if (ends_with(p.name(), kB)) {
      full = at::zeros(p.spec.shape);
    } else {
      auto gen = at::make_generator<at::CPUGeneratorImpl>(data::mix64(seed * 0x9E3779B97F4A7C15ull + index));
      if (s.init == LoraInitKind::kGaussian) {
        full = at::normal(0.0, 1.0 / static_cast<double>(s.rank), p.spec.shape, gen);
      } else {
        const double bound = 1.0 / std::sqrt(static_cast<double>(p.spec.shape[1]));  // kaiming-uniform, a = √5
        full = at::empty(p.spec.shape).uniform_(-bound, bound, gen);
      }
    }
    const int dim = split_dim(p.spec.split);
    if (dim >= 0 && tp_size > 1) {
      const int64_t n = full.size(dim) / tp_size;
      full = full.narrow(dim, tp_rank * n, n);
    }
    at::Tensor dst = p.tensor;
    dst.copy_(full);
  }
}

bool has_lora(const CausalLM& model) {
  bool any = false;
  for_each_lora(model, [&](LoraProjection&) { any = true; });
  return any;
}

double lora_scaling(const CausalLM& model) {
  double scaling = 0;
  for_each_lora(model, [&](LoraProjection& p) { scaling = p.scaling(); });
  return scaling;
}

void set_lora_enabled(CausalLM& model, bool on) {
  for_each_lora(model, [&](LoraProjection& p) { p.set_enabled(on); });
}

std::vector<std::pair<std::string, at::Tensor>> merge_lora(const std::vector<std::pair<std::string, at::Tensor>>& full,
                                                           double scaling) {
  std::map<std::string, at::Tensor> adapters;
  for (const auto& [name, t] : full)
    if (is_adapter_name(name)) adapters[name] = t;
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [name, t] : full) {
    if (is_adapter_name(name)) continue;
    const std::string suffix = ".weight";
    const std::string module = ends_with(name, suffix) ? name.substr(0, name.size() - suffix.size()) : "";
    const auto a = adapters.find(module + kA), b = adapters.find(module + kB);
    if (module.empty() || a == adapters.end() || b == adapters.end()) {
      out.emplace_back(name, t);
      continue;
    }
    const auto delta = at::matmul(b->second.to(at::kFloat), a->second.to(at::kFloat)) * scaling;
    out.emplace_back(name, (t.to(at::kFloat) + delta).to(t.scalar_type()).contiguous());
  }
  return out;
}

}  // namespace aligntrain::model
