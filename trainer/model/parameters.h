// The model's parameter set: every tensor the model owns, once, in the name table's order (hf_names.h), each with
// its Hugging Face name, full shape and tensor-parallel split, whether it trains, and its weight-decay group.
// Loading, saving, export, initialisation, gradient averaging, gradient norm and clipping, AdamW (and ZeRO-1) and
// checkpoints all walk this list, so a parameter added to it (an adapter, a value head) is loaded, saved,
// checkpointed and optimised without touching any of them, and a frozen one gets no gradient, no optimizer state
// and no weight decay.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

#include "trainer/model/hf_names.h"

namespace aligntrain::model {

struct Parameter {
  TensorSpec spec;         // HF name, full shape, tensor-parallel split, initialisation
  at::Tensor tensor;       // this rank's shard: the module's parameter itself (not a copy)
  bool trainable = true;   // false: requires_grad is off, so it has no gradient and no optimizer state
  bool decay = true;       // weight-decay group: matrices decay, norms and biases do not (default_decay)

  const std::string& name() const { return spec.name; }
};

// The default weight-decay group of a tensor of `shape`: matrices (2 or more dimensions) decay.
bool default_decay(const std::vector<int64_t>& shape);

class ParameterSet {
 public:
  // Appends a parameter; a name already in the set is a std::logic_error.
  void add(Parameter p);
  // Freezes or unfreezes every parameter for which `select` is true (sets requires_grad and `trainable`).
  template <class Select>
  void set_trainable(Select select, bool trainable) {
    for (auto& p : items_)
      if (select(p)) set_trainable(p, trainable);
  }
  static void set_trainable(Parameter& p, bool trainable);

  const Parameter* find(const std::string& name) const;
  size_t size() const { return items_.size(); }
  std::vector<Parameter>::const_iterator begin() const { return items_.begin(); }
  std::vector<Parameter>::const_iterator end() const { return items_.end(); }

  std::vector<const Parameter*> trainable() const;
  // Every parameter's spec (name, full shape, split), in order.
  std::vector<TensorSpec> specs() const;
  // Every tensor by HF name, in order (this rank's shards).
  std::vector<std::pair<std::string, at::Tensor>> named_tensors() const;

 private:
  std::vector<Parameter> items_;
};

}  // namespace aligntrain::model
