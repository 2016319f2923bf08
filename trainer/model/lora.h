// LoRA adapters (Hu et al. 2021, as PEFT implements them): a targeted linear map y = W x + b becomes
//   y = W x + b + scaling · B A dropout(x),   A [rank, in], B [out, rank], scaling = alpha / rank (alpha / √rank rsLoRA)
// The base projection is wrapped, not changed: its weights are frozen through the parameter set and the adapters are
// added to it as trainable parameters named as in PEFT's state dict without its "base_model.model." prefix
// ("model.layers.3.self_attn.q_proj.lora_A.weight"), so load, save, optimizer and checkpoints treat them like any
// other parameter. Adapters can be switched off (the frozen base: the reference model for free).
//
// Tensor parallelism (the mapping after A is injected, so this file knows no communicator):
//   column-parallel W (q, k, v, gate, up): A whole, B split by output rows; u = A x goes through copy_to_group
//                                           (forward identity, backward all-reduce), so A's gradient is complete.
//   row-parallel W (o, down):              A split by input columns, B whole; u = A_r x_r goes through
//                                           reduce_from_group (forward all-reduce, backward identity).
// Dropout (training only) multiplies the adapter input by a Bernoulli(1 − p) / (1 − p) mask drawn from the device's
// default generator, which every rank seeds alike. A row-parallel shard x_r draws the mask of the full input width and
// keeps its own columns, so each layout draws the same numbers in the same order and TP=N equals TP=1.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "trainer/model/projection.h"
#include "trainer/model/transformer.h"

namespace aligntrain::model {

enum class LoraInitKind { kDefault, kGaussian };

struct LoraSettings {
  int64_t rank = 8;
  double alpha = 8.0;
  double dropout = 0.0;
  std::vector<std::string> targets;  // module names (q_proj, ...), already expanded from all-linear
  bool rslora = false;
  LoraInitKind init = LoraInitKind::kDefault;

  double scaling() const;
};

// The seven linear maps of a Llama-family decoder layer, in PEFT's all-linear order of the layer.
const std::vector<std::string>& all_linear_targets();
// True for the column-parallel ones (q, k, v, gate, up).
bool is_column_target(const std::string& module);

// The mapping applied to u = A x: identity for one rank; copy_to_group (column) or reduce_from_group (row) under TP.
using LoraMapping = std::function<at::Tensor(const at::Tensor&)>;
struct LoraMappings {
  LoraMapping column, row;  // empty: identity
};

// Which columns of the full input width a projection's input holds: shard `rank` of `size` equal slices (row-parallel
// layers under TP); {0, 1} for a whole input.
struct InputShard {
  int64_t rank = 0, size = 1;
};

class LoraProjection : public Projection {
 public:
  LoraProjection(std::shared_ptr<Projection> base, at::Tensor a, at::Tensor b, double scaling, double dropout,
                 LoraMapping after_a, InputShard shard = {});
  at::Tensor forward(const at::Tensor& x) override;
  void set_enabled(bool on) { enabled_ = on; }
  double scaling() const { return scaling_; }
  bool enabled() const { return enabled_; }

  std::shared_ptr<Projection> base;
  at::Tensor lora_A, lora_B;

 private:
  // x · mask, the mask drawn over the full input width (see the file comment).
  at::Tensor dropout(const at::Tensor& x) const;

  double scaling_, dropout_;
  LoraMapping after_a_;
  InputShard shard_;
  bool enabled_ = true;
};

// True for an adapter parameter name ("....lora_A.weight" / "....lora_B.weight").
bool is_adapter_name(const std::string& name);

// Freezes every base parameter, wraps each targeted projection of every layer and registers its A and B (this
// rank's shards, of the model's dtype and device, left uninitialised) in the parameter set as trainable. Call after
// the base weights are loaded. Throws std::logic_error if the model already has adapters.
void attach_lora(CausalLM& model, const LoraSettings& settings, int64_t tp_rank, int64_t tp_size,
                 const LoraMappings& mappings);

// Initialises the adapters as PEFT does (default: A kaiming-uniform(a=√5) = U(±1/√in), B zeros; gaussian: A normal
// (0, 1/rank), B zeros). Each full tensor is drawn from its own generator seeded by (seed, index), then sliced.
void init_lora(CausalLM& model, const LoraSettings& settings, uint64_t seed, int64_t tp_rank, int64_t tp_size);

// True if the model has adapters.
bool has_lora(const CausalLM& model);
// The scaling shared by the model's adapters (0 without adapters).
double lora_scaling(const CausalLM& model);
// Switches every adapter on or off (off: the frozen base model).
void set_lora_enabled(CausalLM& model, bool on);

// Scoped: adapters off, restored on destruction.
class LoraDisabled {
 public:
  explicit LoraDisabled(CausalLM& model) : model_(model), had_(has_lora(model)) {
    if (had_) set_lora_enabled(model_, false);
  }
  ~LoraDisabled() {
    if (had_) set_lora_enabled(model_, true);
  }
  LoraDisabled(const LoraDisabled&) = delete;
  LoraDisabled& operator=(const LoraDisabled&) = delete;

 private:
  CausalLM& model_;
  bool had_;
};

// Full (gathered) tensors by HF name → the same list with each targeted weight merged (W + scaling · B A, computed
// in fp32 and cast back to W's dtype) and the adapter tensors dropped: PEFT's merge_and_unload.
std::vector<std::pair<std::string, at::Tensor>> merge_lora(
    const std::vector<std::pair<std::string, at::Tensor>>& full, double scaling);

}  // namespace aligntrain::model
