// See data_parallel.h.
#include "trainer/parallel/data_parallel.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "trainer/model/hf_names.h"
#include "trainer/runtime/host_sync.h"

namespace aligntrain::parallel {

std::vector<std::vector<size_t>> plan_buckets(const std::vector<at::Tensor>& params, int64_t bucket_bytes) {
  std::vector<std::vector<size_t>> buckets;
  int64_t filled = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& p = params[i];
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    const bool new_bucket = buckets.empty() || filled + bytes > bucket_bytes ||
                            params[buckets.back().front()].scalar_type() != p.scalar_type();
    if (new_bucket) {
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(i);
    filled += bytes;
  }
  return buckets;
}

at::Tensor pack_bucket(const std::vector<at::Tensor>& grads) {
  std::vector<at::Tensor> flat_parts;
  for (const auto& g : grads) flat_parts.push_back(g.reshape({-1}));
  return at::cat(flat_parts);
}

void unpack_average(at::Tensor& flat, const std::vector<at::Tensor>& grads, int group_size) {
  flat.mul_(1.0 / group_size);
  int64_t offset = 0;
  for (const auto& g : grads) {
    at::Tensor target = g;
    target.copy_(flat.narrow(0, offset, g.numel()).view_as(g));
    offset += g.numel();
  }
}

GradientAverager::GradientAverager(std::vector<at::Tensor> params, runtime::Communicator& group, int64_t bucket_bytes)
    : params_(std::move(params)), group_(group), buckets_(plan_buckets(params_, bucket_bytes)) {}

void GradientAverager::average() {
  if (group_.size() == 1) return;
  for (const auto& bucket : buckets_) {
    std::vector<at::Tensor> grads;
    for (size_t i : bucket) {
      if (params_[i].grad().defined()) grads.push_back(params_[i].mutable_grad());
    }
    if (grads.empty()) continue;
    at::Tensor flat = pack_bucket(grads);
    group_.all_reduce(flat, runtime::ReduceOp::kSum);
    unpack_average(flat, grads, group_.size());
  }
}

std::vector<NormParam> norm_params(const model::ParameterSet& params) {
  std::vector<NormParam> out;
  for (const auto* p : params.trainable()) out.push_back({p->tensor, p->spec.split != model::Split::kReplicated});
  return out;
}

at::Tensor sum_dealt_rows(const at::Tensor& table, runtime::Communicator& dp_group, const at::Device& device) {
  if (dp_group.size() == 1) return table;
  auto t = table.to(device);
  dp_group.all_reduce(t, runtime::ReduceOp::kSum);
  return t.to(at::kCPU);
}

at::Tensor global_grad_norm_tensor(const std::vector<NormParam>& params, runtime::Communicator& tp_group) {
  const auto options = at::TensorOptions(at::kDouble).device(params.empty() ? at::Device(at::kCPU)
                                                                             : params.front().param.device());
  at::Tensor sharded = at::zeros({1}, options), replicated = at::zeros({1}, options);
  for (const auto& p : params) {
    if (!p.param.grad().defined()) continue;
    // Σ g² in fp64, a few million elements at a time: no fp64 copy of a whole (embedding-sized) gradient.
    const auto g = p.param.grad().reshape({-1});
    auto sq = at::zeros({1}, g.options().dtype(at::kDouble));
    constexpr int64_t kSlice = int64_t{1} << 22;
    for (int64_t start = 0; start < g.numel(); start += kSlice)
      sq.add_(g.narrow(0, start, std::min(kSlice, g.numel() - start)).to(at::kDouble).pow(2).sum());
    (p.sharded ? sharded : replicated).add_(sq);
  }
  if (tp_group.size() > 1) tp_group.all_reduce(sharded, runtime::ReduceOp::kSum);
  return (sharded + replicated).sqrt_();
}

at::Tensor clip_grad_norm_tensor(const std::vector<NormParam>& params, runtime::Communicator& tp_group,
                                 double max_norm) {
  const at::Tensor norm = global_grad_norm_tensor(params, tp_group);
  // Where it is not below 1 (or NaN) the factor is exactly 1.
  at::Tensor factor = at::full({}, max_norm, norm.options()).div_(norm.reshape({}) + 1e-6);
  factor = at::where(factor.lt(1.0), factor, at::ones_like(factor));
  for (const auto& p : params) {
    if (!p.param.grad().defined()) continue;
    // A gradient times a host scalar (what this replaced) converts the scalar to the gradient's dtype first (for bf16
    // gradients: the factor rounded to bf16), so the factor is converted alike.
    p.param.mutable_grad().mul_(factor.to(p.param.grad().scalar_type()));
  }
  return norm;
}

double global_grad_norm(const std::vector<NormParam>& params, runtime::Communicator& tp_group) {
  return runtime::host_value<double>(global_grad_norm_tensor(params, tp_group));
}

double clip_grad_norm(const std::vector<NormParam>& params, runtime::Communicator& tp_group, double max_norm) {
  return runtime::host_value<double>(clip_grad_norm_tensor(params, tp_group, max_norm));
}

}  // namespace aligntrain::parallel
