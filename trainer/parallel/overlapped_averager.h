// Data-parallel gradient averaging overlapped with the backward pass.
//
// The same buckets as GradientAverager (plan_buckets), reduced with the same calls (pack_bucket, one all-reduce sum,
// unpack_average), so the averaged gradients are bitwise the same; only when each all-reduce is issued changes. A
// post-hook on every parameter's gradient accumulator (the autograd node that adds into .grad; held here, so that
// the same node serves every backward) marks its gradient final during the armed backward (the step's last
// micro-batch: earlier micro-batches only accumulate). The node runs even when it receives no gradient, e.g. for an
// LM head whose weight gradient the loss wrote into .grad during the forward (objectives::token_logprob_sum), so such
// a gradient is final once autograd reaches it. Buckets are launched in one fixed order on every rank — the
// last bucket first, since the backward pass finishes the last layers' gradients first — each as soon as its own
// gradients are final and every bucket before it in that order has been launched, so that the collectives on the
// data-parallel group are issued in the same order on every rank whatever the timing. A launched bucket is packed,
// all-reduced, divided by the group size and copied back into its gradients, so at most a bucket's worth of extra
// memory is in use per bucket in flight. finish() launches what the backward left (buckets holding a parameter that
// autograd did not reach this step) and waits for every reduction.
//
// On CUDA a bucket's all-reduce (and its copy back) runs on a side stream (from the device's stream pool) that first
// waits for the gradients' stream; finish() makes the current stream wait for the side stream, so nothing blocks the
// host. On the
// CPU (MPI) the all-reduce completes inside the hook: MPI is initialised FUNNELED and makes no progress between calls,
// so the communication moves into the backward pass instead of after it, but is not hidden (bench/RESULTS.md).
//
// The parameters' graphs must be the same on every rank of the group (the same parameters receive gradients), as
// they are for the objectives of this trainer; the group's collectives are then issued in the same order everywhere.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Stream.h>

#include <memory>

#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "trainer/runtime/communicator.h"

namespace torch::autograd {
struct Node;
}

namespace aligntrain::parallel {

// Host seconds spent on the data-parallel all-reduces, summed over steps.
struct ReduceTiming {
  double in_backward = 0;  // inside the backward pass (launches from hooks; on CPU the whole reduction)
  double exposed = 0;      // after the backward pass ended, until the averaged gradients are in place
  int64_t steps = 0;
  int64_t buckets_in_backward = 0;  // buckets launched from the hooks (the rest by finish())
};

class OverlappedAverager {
 public:
  // Installs a post-hook on every parameter's gradient accumulator (throws std::invalid_argument for a parameter
  // that does not require grad).
  OverlappedAverager(std::vector<at::Tensor> params, runtime::Communicator& dp_group, int64_t bucket_bytes);
  // Removes the hooks.
  ~OverlappedAverager();
  OverlappedAverager(const OverlappedAverager&) = delete;
  OverlappedAverager& operator=(const OverlappedAverager&) = delete;

  // Call before the backward pass after which the gradients are final (the step's last micro-batch). Outside an
  // armed backward the hooks do nothing.
  void arm();
  // Collective over the data-parallel group; call after the armed backward (or instead of it, when this rank has no
  // micro-batch). A parameter without a gradient when its bucket is launched gets zeros first (what the training loop
  // gives such parameters before averaging), so every bucket holds the same elements as GradientAverager's. Disarms.
  void finish();

  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }
  const ReduceTiming& timing() const { return timing_; }

 private:
  class Hook;

  void on_gradient_final(size_t param);
  void launch_ready_buckets();  // in order, while the next bucket is ready
  // Packs the bucket, all-reduces it and writes the averages back (on CUDA enqueued on the side stream).
  void launch(size_t bucket);

  std::vector<at::Tensor> params_;
  runtime::Communicator& group_;
  std::vector<std::vector<size_t>> buckets_;  // indices into params_
  std::vector<size_t> bucket_of_;             // param index -> bucket index
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;  // per parameter, with our post-hook
  std::vector<uintptr_t> hook_keys_;
  std::optional<c10::Stream> side_stream_;    // CUDA parameters only

  std::mutex mutex_;  // hooks may run on an autograd device thread
  bool armed_ = false;
  std::vector<bool> final_;         // per parameter, in the armed backward
  std::vector<size_t> pending_;     // per bucket: parameters whose gradient is not final yet
  int64_t next_ = -1;               // the next bucket to launch (launch order: last bucket first); -1: all launched
  ReduceTiming timing_;
};

}  // namespace aligntrain::parallel
