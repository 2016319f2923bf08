// See data_parallel.h.
#include "trainer/parallel/data_parallel.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "trainer/model/hf_names.h"

namespace aligntrain::parallel {

GradientAverager::GradientAverager(std::vector<at::Tensor> params, runtime::Communicator& group, int64_t bucket_bytes)
    : params_(std::move(params)), group_(group) {
  // Consecutive parameters of one dtype share a bucket until it reaches bucket_bytes.
  int64_t filled = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& p = params_[i];
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    const bool new_bucket = buckets_.empty() || filled + bytes > bucket_bytes ||
                            params_[buckets_.back().front()].scalar_type() != p.scalar_type();
    if (new_bucket) {
      buckets_.emplace_back();
      filled = 0;
    }
    buckets_.back().push_back(i);
    filled += bytes;
  }
}

void GradientAverager::average() {
  if (group_.size() == 1) return;
  const double scale = 1.0 / group_.size();
  for (const auto& bucket : buckets_) {
    std::vector<at::Tensor> grads;
    for (size_t i : bucket) {
      if (params_[i].grad().defined()) grads.push_back(params_[i].mutable_grad());
    }
    if (grads.empty()) continue;
    std::vector<at::Tensor> flat_parts;
    for (const auto& g : grads) flat_parts.push_back(g.reshape({-1}));
    at::Tensor flat = at::cat(flat_parts);
    group_.all_reduce(flat, runtime::ReduceOp::kSum);
    flat.mul_(scale);
    int64_t offset = 0;
    for (auto& g : grads) {
      g.copy_(flat.narrow(0, offset, g.numel()).view_as(g));
      offset += g.numel();
    }
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

double global_grad_norm(const std::vector<NormParam>& params, runtime::Communicator& tp_group) {
  at::Tensor sharded = at::zeros({1}, at::kDouble), replicated = at::zeros({1}, at::kDouble);
  for (const auto& p : params) {
    if (!p.param.grad().defined()) continue;
    // Σ g² in fp64, a few million elements at a time: no fp64 copy of a whole (embedding-sized) gradient.
    const auto g = p.param.grad().reshape({-1});
    auto sq = at::zeros({1}, g.options().dtype(at::kDouble));
    constexpr int64_t kSlice = int64_t{1} << 22;
    for (int64_t start = 0; start < g.numel(); start += kSlice)
      sq.add_(g.narrow(0, start, std::min(kSlice, g.numel() - start)).to(at::kDouble).pow(2).sum());
    sq = sq.to(at::kCPU);
    (p.sharded ? sharded : replicated).add_(sq);
  }
  if (tp_group.size() > 1) tp_group.all_reduce(sharded, runtime::ReduceOp::kSum);
  return std::sqrt((sharded + replicated).item<double>());
}

double clip_grad_norm(const std::vector<NormParam>& params, runtime::Communicator& tp_group, double max_norm) {
  const double norm = global_grad_norm(params, tp_group);
  const double factor = max_norm / (norm + 1e-6);
  if (factor < 1.0) {
    for (const auto& p : params) {
      if (p.param.grad().defined()) p.param.mutable_grad().mul_(factor);
    }
  }
  return norm;
}

}  // namespace aligntrain::parallel
