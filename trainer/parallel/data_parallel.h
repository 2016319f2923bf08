// Data parallelism and the global gradient norm.
//
// GradientAverager averages the gradients of a model's parameters over the data-parallel group with bucketed flat
// all-reduces: gradients are packed into contiguous buckets of about `bucket_bytes` (one dtype per bucket, in
// parameter order), each bucket is all-reduced once and divided by the group size, and the results are copied back.
//
// global_grad_norm computes ‖g‖₂ over the whole model under tensor parallelism: a sharded parameter's squared norm
// is summed over the TP group (each rank holds a different slice); a replicated one is counted once (its gradient
// is the same on every TP rank). clip_grad_norm scales every gradient by min(1, max_norm / (‖g‖ + 1e-6)).
// OverlappedAverager (overlapped_averager.h) computes the same averages as GradientAverager during the backward pass.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "trainer/model/parameters.h"
#include "trainer/runtime/communicator.h"

namespace aligntrain::parallel {

// The bucket plan both averagers use: consecutive parameters of one dtype share a bucket until it would exceed
// `bucket_bytes` (a parameter larger than that gets a bucket of its own). Indices into `params`, in order.
std::vector<std::vector<size_t>> plan_buckets(const std::vector<at::Tensor>& params, int64_t bucket_bytes);

// One bucket's reduction, split at the point where the all-reduce runs: pack_bucket copies the gradients into one
// flat tensor (in order); after the flat tensor's all-reduce (sum), unpack_average divides it by `group_size` and
// copies the results back into the gradients. GradientAverager and OverlappedAverager share these, so that both
// compute the same bits.
at::Tensor pack_bucket(const std::vector<at::Tensor>& grads);
void unpack_average(at::Tensor& flat, const std::vector<at::Tensor>& grads, int group_size);

// The reference (non-overlapped) averager: every bucket is reduced after the backward pass, in bucket order.
class GradientAverager {
 public:
  GradientAverager(std::vector<at::Tensor> params, runtime::Communicator& dp_group, int64_t bucket_bytes);
  // Collective over the data-parallel group. Parameters without a gradient are skipped (on every rank alike).
  void average();
  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }

 private:
  std::vector<at::Tensor> params_;
  runtime::Communicator& group_;
  std::vector<std::vector<size_t>> buckets_;  // indices into params_
};

// A CPU table whose rows were each computed by exactly one data-parallel rank (zeros on the others, e.g. from
// data::rank_batches), summed over the group so that every rank holds all of it. The sum runs on `device` (NCCL
// reduces CUDA tensors); a group of one returns `table` as it is.
at::Tensor sum_dealt_rows(const at::Tensor& table, runtime::Communicator& dp_group, const at::Device& device);

struct NormParam {
  at::Tensor param;
  bool sharded = false;  // split over the tensor-parallel group
};

// The trainable parameters of a parameter set with their sharding, for the two functions below.
std::vector<NormParam> norm_params(const model::ParameterSet& params);

// Collective over `tp_group`. The global 2-norm of the gradients (fp64 accumulation) as a one-element fp64 tensor on
// the gradients' device: nothing is read on the host, so the step need not wait for the device.
at::Tensor global_grad_norm_tensor(const std::vector<NormParam>& params, runtime::Communicator& tp_group);
// Scales gradients in place so the global norm is at most `max_norm` (> 0): every gradient is multiplied by
// min(1, max_norm / (‖g‖ + 1e-6)) computed on the device (a factor that is not below 1, or NaN, leaves the gradients'
// bits as they are). Returns the norm before clipping, as global_grad_norm_tensor.
at::Tensor clip_grad_norm_tensor(const std::vector<NormParam>& params, runtime::Communicator& tp_group,
                                 double max_norm);

// The same, with the norm read on the host (runtime::host_value: counted as a host–device synchronisation).
double global_grad_norm(const std::vector<NormParam>& params, runtime::Communicator& tp_group);
double clip_grad_norm(const std::vector<NormParam>& params, runtime::Communicator& tp_group, double max_norm);

}  // namespace aligntrain::parallel
