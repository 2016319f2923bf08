// The Communicator of a group of one (a process started without mpirun, or a tensor-/data-parallel group of size 1):
// no MPI, no NCCL; every collective is a no-op (all_reduce, broadcast, barrier) or a copy (all_gather,
// reduce_scatter). Works for tensors on any device. Arguments are checked as the other backends check them.
#pragma once

#include <memory>

#include "trainer/runtime/communicator.h"

namespace aligntrain::runtime {

class SelfCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce(at::Tensor& tensor, ReduceOp op) override;
  at::Tensor all_gather(const at::Tensor& tensor, int64_t dim = 0) override;
  at::Tensor reduce_scatter(const at::Tensor& tensor, ReduceOp op, int64_t dim = 0) override;
  void broadcast(at::Tensor& tensor, int root) override;
  void barrier() override {}
  std::unique_ptr<Communicator> split(int color, int key) override;
};

}  // namespace aligntrain::runtime
