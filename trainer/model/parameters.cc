// See parameters.h.
#include "trainer/model/parameters.h"

#include <stdexcept>

namespace aligntrain::model {

bool default_decay(const std::vector<int64_t>& shape) { return shape.size() >= 2; }

void ParameterSet::add(Parameter p) {
  if (find(p.name())) throw std::logic_error("parameter " + p.name() + " is registered twice");
  items_.push_back(std::move(p));
}

void ParameterSet::set_trainable(Parameter& p, bool trainable) {
  p.trainable = trainable;
  p.tensor.requires_grad_(trainable);
  if (!trainable) p.tensor.mutable_grad() = at::Tensor();
}

const Parameter* ParameterSet::find(const std::string& name) const {
  for (const auto& p : items_)
    if (p.name() == name) return &p;
  return nullptr;
}

std::vector<const Parameter*> ParameterSet::trainable() const {
  std::vector<const Parameter*> out;
  for (const auto& p : items_)
    if (p.trainable) out.push_back(&p);
  return out;
}

std::vector<TensorSpec> ParameterSet::specs() const {
  std::vector<TensorSpec> out;
  for (const auto& p : items_) out.push_back(p.spec);
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> ParameterSet::named_tensors() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  out.reserve(items_.size());
  for (const auto& p : items_) out.emplace_back(p.name(), p.tensor);
  return out;
}

}  // namespace aligntrain::model
