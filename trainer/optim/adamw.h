// AdamW with decoupled weight decay (Loshchilov & Hutter), the same arithmetic as torch.optim.AdamW
// (foreach=False): p ← p·(1 − lr·wd); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
// p ← p − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε).
//
// Parameters that are not fp32 (bf16 training) get an fp32 master copy: the update runs on the master and the
// result is rounded into the parameter, so small updates are not lost to bf16 rounding. Moments are always fp32.
//
// Three ways to compute the same update (AdamWOptions::impl):
//   per-parameter  the formula above one parameter at a time, large tensors in slices of a few million elements (small
//                  temporaries). The CPU default.
//   foreach        the same ATen ops as multi-tensor _foreach_ calls over every parameter of a weight-decay group (on
//                  CUDA a few kernels for the whole model; on the CPU ATen runs them per tensor: the same bits as
//                  per-parameter, tested). Its temporaries (the denominators) are the size of the group.
//   fused          ATen's _fused_adamw_: one pass per parameter with the moments, the bias corrections and the decay
//                  in registers (θ ← θ − lr·wd·θ instead of θ·(1 − lr·wd)): the same formula, equal within fp32
//                  rounding, not bitwise. The CUDA default.
// Each default is deterministic, so a resumed run stays bitwise on its device.
//
// ZeRO-1 (a data-parallel group of more than one): each parameter's optimizer state lives on one owner rank of
// the group (parameters are dealt to ranks by size, largest first, to the least-loaded rank); the owner updates it
// and broadcasts the new values. The arithmetic is the same as without sharding, so the weights are identical.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "trainer/model/parameters.h"
#include "trainer/runtime/communicator.h"

namespace aligntrain::optim {

enum class AdamWImpl { kAuto, kPerParameter, kForeach, kFused };

struct AdamWOptions {
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  AdamWImpl impl = AdamWImpl::kAuto;  // kAuto: kFused for CUDA parameters, kPerParameter otherwise
};

struct ParamGroupEntry {
  std::string name;
  at::Tensor param;
  bool decay = true;  // weight decay applies (false for norms and biases by default)
};

// The trainable parameters of a set, with their weight-decay groups: what AdamW optimises. Frozen parameters are
// not in it, so they get no optimizer state and no weight decay.
std::vector<ParamGroupEntry> trainable_entries(const model::ParameterSet& params);

class AdamW {
 public:
  // `zero_group`: the data-parallel group to shard optimizer state over (nullptr: no sharding).
  AdamW(std::vector<ParamGroupEntry> params, AdamWOptions options, runtime::Communicator* zero_group = nullptr);

  // One update with learning rate `lr` from each parameter's .grad() (a missing gradient counts as zero).
  // Collective over the ZeRO group when sharded.
  void step(double lr);
  int64_t steps() const { return step_; }
  // The implementation in use (kAuto resolved by the parameters' device).
  AdamWImpl impl() const { return impl_; }

  // This rank's optimizer state as named tensors, for checkpoints: "exp_avg.<name>", "exp_avg_sq.<name>" and,
  // for non-fp32 parameters, "master.<name>" (only the parameters this rank owns under ZeRO-1).
  std::vector<std::pair<std::string, at::Tensor>> state_tensors() const;
  // The (state tensor name, parameter name) of each tensor state_tensors() returns, in the same order: what a
  // checkpoint written by another layout must provide (checkpoint/reshard.h).
  std::vector<std::pair<std::string, std::string>> state_layout() const;
  // Restores what state_tensors() returned (same parameters, same layout). Throws std::runtime_error naming a
  // missing or mis-shaped tensor.
  void load_state(const std::vector<std::pair<std::string, at::Tensor>>& tensors, int64_t steps);

  // Bytes of optimizer state (moments and master copies) this rank holds.
  int64_t state_bytes() const;

 private:
  struct Slot {
    ParamGroupEntry entry;
    int owner = 0;
    at::Tensor master, exp_avg, exp_avg_sq;  // undefined where this rank is not the owner
  };
  bool owns(const Slot& s) const;
  // One update of the slots this rank owns, by each implementation.
  void update_per_parameter(double lr);
  void update_multi_tensor(double lr, bool fused);

  std::vector<Slot> slots_;
  AdamWOptions options_;
  AdamWImpl impl_ = AdamWImpl::kPerParameter;
  runtime::Communicator* zero_;
  int64_t step_ = 0;
};

}  // namespace aligntrain::optim
