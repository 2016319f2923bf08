// The one small interface over collectives that the rest of aligntrain uses (DESIGN.md §7). It takes tensors,
// never byte counts. Backends: MPI for CPU tensors (fp32, fp64, int64, bf16 staged through fp32), NCCL for CUDA
// tensors on the current stream, and a trivial one for a group of one (every call is a no-op or a copy).
//
// Groups are explicit objects passed to whoever needs them; there is no global distributed state.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>

namespace aligntrain::runtime {

enum class ReduceOp { kSum, kMax, kAvg };

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // In place on every rank.
  virtual void all_reduce(at::Tensor& tensor, ReduceOp op) = 0;
  // Every rank's `tensor` concatenated along `dim` in rank order (all ranks pass the same shape).
  virtual at::Tensor all_gather(const at::Tensor& tensor, int64_t dim = 0) = 0;
  // Reduce over ranks, then rank r keeps chunk r of `dim` (its size must divide by size()).
  virtual at::Tensor reduce_scatter(const at::Tensor& tensor, ReduceOp op, int64_t dim = 0) = 0;
  // In place: every rank ends with `root`'s values.
  virtual void broadcast(at::Tensor& tensor, int root) = 0;
  virtual void barrier() = 0;
  // A sub-communicator of the ranks passing the same `color`, ordered by `key` (MPI_Comm_split semantics).
  // Collective over this communicator.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
};

}  // namespace aligntrain::runtime
