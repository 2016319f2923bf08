#include "trainer/optim/adamw.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <stdexcept>

namespace aligntrain::optim {

std::vector<ParamGroupEntry> trainable_entries(const model::ParameterSet& params) {
  std::vector<ParamGroupEntry> out;
  for (const auto* p : params.trainable()) out.push_back({p->name(), p->tensor, p->decay});
  return out;
}

AdamW::AdamW(std::vector<ParamGroupEntry> params, AdamWOptions options, runtime::Communicator* zero_group)
    : options_(options), zero_(zero_group && zero_group->size() > 1 ? zero_group : nullptr) {
  std::vector<int64_t> load(zero_ ? zero_->size() : 1, 0);
  std::vector<size_t> order(params.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return params[a].param.numel() > params[b].param.numel(); });
  std::vector<int> owner(params.size(), 0);
  for (size_t i : order) {
    const int r = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    owner[i] = r;
    load[r] += params[i].param.numel();
  }
  for (size_t i = 0; i < params.size(); ++i) {
    Slot s{std::move(params[i]), owner[i], {}, {}, {}};
    if (owns(s)) {
      const auto& p = s.entry.param;
      if (p.scalar_type() != at::kFloat) s.master = p.detach().to(at::kFloat).clone();
      s.exp_avg = at::zeros(p.sizes(), p.options().dtype(at::kFloat));
      s.exp_avg_sq = at::zeros(p.sizes(), p.options().dtype(at::kFloat));
    }
    slots_.push_back(std::move(s));
  }
  impl_ = options_.impl;
  if (impl_ == AdamWImpl::kAuto) {
    const bool cuda = !slots_.empty() && slots_.front().entry.param.is_cuda();
    impl_ = cuda ? AdamWImpl::kFused : AdamWImpl::kPerParameter;
  }
}

bool AdamW::owns(const Slot& s) const { return !zero_ || s.owner == zero_->rank(); }

void AdamW::step(double lr) {
  ++step_;
  at::NoGradGuard no_grad;
  if (impl_ == AdamWImpl::kPerParameter) {
    update_per_parameter(lr);
  } else {
    update_multi_tensor(lr, impl_ == AdamWImpl::kFused);
  }
  if (zero_) {
    for (auto& s : slots_) {
      at::Tensor data = s.entry.param.detach();
      zero_->broadcast(data, s.owner);
    }
  }
}

void AdamW::update_per_parameter(double lr) {
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double bias_correction1 = 1.0 - std::pow(b1, static_cast<double>(step_));
  const double bias_correction2 = 1.0 - std::pow(b2, static_cast<double>(step_));
  const double step_size = lr / bias_correction1;
  const double bias_correction2_sqrt = std::sqrt(bias_correction2);
  for (auto& s : slots_) {
    if (!owns(s)) continue;
    auto& p = s.entry.param;
    at::Tensor w = s.master.defined() ? s.master : p;
    at::Tensor g = p.grad().defined() ? p.grad() : at::zeros_like(p);
    if (g.scalar_type() != at::kFloat) g = g.to(at::kFloat);
    const bool decay = s.entry.decay && options_.weight_decay != 0.0;
    // Element-wise, so slices of a few million elements give the same bits as the whole tensor, with temporaries
    // (the denominator) of a slice instead of an embedding-sized tensor.
    auto update = [&](at::Tensor w, const at::Tensor& g, at::Tensor m, at::Tensor v) {
      if (decay) w.mul_(1.0 - lr * options_.weight_decay);
      m.mul_(b1).add_(g, 1.0 - b1);
      v.mul_(b2).addcmul_(g, g, 1.0 - b2);
      const auto denom = v.sqrt().div_(bias_correction2_sqrt).add_(options_.eps);
      w.addcdiv_(m, denom, -step_size);
    };
    constexpr int64_t kSlice = int64_t{1} << 22;
    const bool sliceable = w.is_contiguous() && g.is_contiguous() && s.exp_avg.is_contiguous() &&
                           s.exp_avg_sq.is_contiguous() && w.numel() > kSlice;
    if (!sliceable) {
      update(w, g, s.exp_avg, s.exp_avg_sq);
    } else {
      const auto fw = w.view({-1}), fg = g.view({-1}), fm = s.exp_avg.view({-1}), fv = s.exp_avg_sq.view({-1});
      for (int64_t start = 0; start < fw.numel(); start += kSlice) {
        const int64_t n = std::min(kSlice, fw.numel() - start);
        update(fw.narrow(0, start, n), fg.narrow(0, start, n), fm.narrow(0, start, n), fv.narrow(0, start, n));
      }
    }
    if (s.master.defined()) p.copy_(s.master);
  }
}

void AdamW::update_multi_tensor(double lr, bool fused) {
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double bias_correction1 = 1.0 - std::pow(b1, static_cast<double>(step_));
  const double bias_correction2 = 1.0 - std::pow(b2, static_cast<double>(step_));
  const double step_size = lr / bias_correction1;
  const double bias_correction2_sqrt = std::sqrt(bias_correction2);
  // One multi-tensor update per weight-decay group (decay applies or not).
  for (const bool decay : {true, false}) {
    std::vector<at::Tensor> w, g, m, v, params, masters;
    for (auto& s : slots_) {
      if (!owns(s) || (s.entry.decay && options_.weight_decay != 0.0) != decay) continue;
      const auto& p = s.entry.param;
      w.push_back(s.master.defined() ? s.master : p);
      at::Tensor grad = p.grad().defined() ? p.grad() : at::zeros_like(p);
      g.push_back(grad.scalar_type() == at::kFloat ? grad : grad.to(at::kFloat));
      m.push_back(s.exp_avg);
      v.push_back(s.exp_avg_sq);
      if (s.master.defined()) {
        params.push_back(p);
        masters.push_back(s.master);
      }
    }
    if (w.empty()) continue;
    const double wd = decay ? options_.weight_decay : 0.0;
    if (fused) {
      // The step count as a device tensor (filled on the device, never read back on the host).
      const at::Tensor step = at::full({}, static_cast<double>(step_), w.front().options().dtype(at::kFloat));
      const std::vector<at::Tensor> steps(w.size(), step);
      at::_fused_adamw_(w, g, m, v, /*max_exp_avg_sqs=*/{}, steps, lr, b1, b2, wd, options_.eps,
                        /*amsgrad=*/false, /*maximize=*/false);
    } else {
      if (decay) at::_foreach_mul_(w, 1.0 - lr * wd);
      at::_foreach_mul_(m, b1);
      at::_foreach_add_(m, g, 1.0 - b1);
      at::_foreach_mul_(v, b2);
      at::_foreach_addcmul_(v, g, g, 1.0 - b2);
      auto denom = at::_foreach_sqrt(v);
      at::_foreach_div_(denom, bias_correction2_sqrt);
      at::_foreach_add_(denom, options_.eps);
      at::_foreach_addcdiv_(w, m, denom, -step_size);
    }
    if (!params.empty()) at::_foreach_copy_(params, masters);
  }
}

std::vector<std::pair<std::string, at::Tensor>> AdamW::state_tensors() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& s : slots_) {
    if (!owns(s)) continue;
    out.emplace_back("exp_avg." + s.entry.name, s.exp_avg);
    out.emplace_back("exp_avg_sq." + s.entry.name, s.exp_avg_sq);
    if (s.master.defined()) out.emplace_back("master." + s.entry.name, s.master);
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> AdamW::state_layout() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& s : slots_) {
    if (!owns(s)) continue;
    out.emplace_back("exp_avg." + s.entry.name, s.entry.name);
    out.emplace_back("exp_avg_sq." + s.entry.name, s.entry.name);
    if (s.master.defined()) out.emplace_back("master." + s.entry.name, s.entry.name);
  }
  return out;
}

void AdamW::load_state(const std::vector<std::pair<std::string, at::Tensor>>& tensors, int64_t steps) {
  std::map<std::string, at::Tensor> by_name(tensors.begin(), tensors.end());
  auto take = [&](const std::string& name, at::Tensor& into) {
    const auto it = by_name.find(name);
    if (it == by_name.end()) throw std::runtime_error("optimizer state has no tensor " + name);
    if (it->second.sizes() != into.sizes()) throw std::runtime_error("optimizer state tensor " + name + " has the wrong shape");
    into.copy_(it->second);
  };
  at::NoGradGuard no_grad;
  for (auto& s : slots_) {
    if (!owns(s)) continue;
    take("exp_avg." + s.entry.name, s.exp_avg);
    take("exp_avg_sq." + s.entry.name, s.exp_avg_sq);
    if (s.master.defined()) take("master." + s.entry.name, s.master);
  }
  step_ = steps;
}

int64_t AdamW::state_bytes() const {
  int64_t bytes = 0;
  for (const auto& s : slots_) {
    if (!owns(s)) continue;
    bytes += (s.exp_avg.numel() + s.exp_avg_sq.numel()) * 4;
    if (s.master.defined()) bytes += s.master.numel() * 4;
  }
  return bytes;
}

}  // namespace aligntrain::optim
