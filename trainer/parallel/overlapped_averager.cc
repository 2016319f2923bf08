// See overlapped_averager.h.
#include "trainer/parallel/overlapped_averager.h"

#include <ATen/ATen.h>
#include <c10/core/Event.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <chrono>
#include <stdexcept>
#include <string>

#include "trainer/parallel/data_parallel.h"

namespace aligntrain::parallel {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

class OverlappedAverager::Hook final : public torch::autograd::FunctionPostHook {
 public:
  Hook(OverlappedAverager* owner, size_t param) : owner_(owner), param_(param) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    owner_->on_gradient_final(param_);
    return outputs;
  }

 private:
  OverlappedAverager* owner_;
  size_t param_;
};

OverlappedAverager::OverlappedAverager(std::vector<at::Tensor> params, runtime::Communicator& group,
                                       int64_t bucket_bytes)
    : params_(std::move(params)), group_(group), buckets_(plan_buckets(params_, bucket_bytes)) {
  bucket_of_.resize(params_.size());
  for (size_t b = 0; b < buckets_.size(); ++b)
    for (size_t i : buckets_[b]) bucket_of_[i] = b;
  final_.assign(params_.size(), false);
  pending_.resize(buckets_.size());
  if (!params_.empty() && params_.front().is_cuda()) {
    const c10::Device device = params_.front().device();
    side_stream_ = c10::impl::VirtualGuardImpl(device.type()).getStreamFromGlobalPool(device);
  }
  if (group_.size() == 1) return;  // nothing to average: no hooks, finish() does nothing
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].requires_grad()) {
      throw std::invalid_argument("OverlappedAverager: parameter " + std::to_string(i) + " does not require grad");
    }
    accumulators_.push_back(torch::autograd::impl::grad_accumulator(params_[i]));
    hook_keys_.push_back(accumulators_.back()->add_post_hook(std::make_unique<Hook>(this, i)));
  }
}

OverlappedAverager::~OverlappedAverager() {
  for (size_t i = 0; i < accumulators_.size(); ++i) accumulators_[i]->del_post_hook(hook_keys_[i]);
}

void OverlappedAverager::arm() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (armed_) throw std::logic_error("OverlappedAverager::arm: already armed (finish() was not called)");
  armed_ = true;
  final_.assign(params_.size(), false);
  for (size_t b = 0; b < buckets_.size(); ++b) pending_[b] = buckets_[b].size();
  next_ = static_cast<int64_t>(buckets_.size()) - 1;
}

void OverlappedAverager::on_gradient_final(size_t param) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_) return;  // an earlier micro-batch: the gradient keeps accumulating
  if (final_[param]) {
    // A second backward into the same gradient after arm(): its bucket may already be reduced.
    throw std::logic_error("OverlappedAverager: parameter " + std::to_string(param) +
                           " received a gradient twice in the armed backward (arm() only before the last one)");
  }
  final_[param] = true;
  --pending_[bucket_of_[param]];
  const auto t = Clock::now();
  const int64_t before = next_;
  launch_ready_buckets();
  if (next_ != before) {
    timing_.in_backward += seconds_since(t);
    timing_.buckets_in_backward += before - next_;
  }
}

void OverlappedAverager::launch_ready_buckets() {
  while (next_ >= 0 && pending_[static_cast<size_t>(next_)] == 0) launch(static_cast<size_t>(next_--));
}

void OverlappedAverager::launch(size_t bucket) {
  std::vector<at::Tensor> grads;
  for (size_t i : buckets_[bucket]) {
    if (!params_[i].grad().defined()) params_[i].mutable_grad() = at::zeros_like(params_[i]);
    grads.push_back(params_[i].mutable_grad());
  }
  at::Tensor flat = pack_bucket(grads);
  if (!side_stream_) {
    group_.all_reduce(flat, runtime::ReduceOp::kSum);
    unpack_average(flat, grads, group_.size());
    return;
  }
  // CUDA: the side stream waits for the stream that packed the bucket, then reduces it and writes the averages back
  // into the gradients (which autograd no longer touches in this backward); the flat buffer is marked as used on the
  // side stream so that the caching allocator does not hand it out again before that work has run.
  const c10::Device device = flat.device();
  c10::impl::VirtualGuardImpl impl(device.type());
  c10::Event packed(device.type());
  packed.record(impl.getStream(device));
  packed.block(*side_stream_);
  c10::StreamGuard on_side(*side_stream_);
  group_.all_reduce(flat, runtime::ReduceOp::kSum);
  unpack_average(flat, grads, group_.size());
  impl.recordDataPtrOnStream(flat.storage().data_ptr(), *side_stream_);
}

void OverlappedAverager::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (group_.size() == 1) {
    armed_ = false;
    return;
  }
  const auto t = Clock::now();
  if (!armed_) {  // no armed backward on this rank (no micro-batch): every bucket is launched here
    for (size_t b = 0; b < buckets_.size(); ++b) pending_[b] = 0;
    next_ = static_cast<int64_t>(buckets_.size()) - 1;
  }
  // What the backward left, in the same order on every rank.
  while (next_ >= 0) launch(static_cast<size_t>(next_--));
  if (side_stream_) {
    const c10::Device device = params_.front().device();
    c10::Event reduced(device.type());
    reduced.record(*side_stream_);
    reduced.block(c10::impl::VirtualGuardImpl(device.type()).getStream(device));
  }
  armed_ = false;
  timing_.exposed += seconds_since(t);
  ++timing_.steps;
}

}  // namespace aligntrain::parallel
