// The NCCL backend of Communicator (DESIGN.md §7): collectives on CUDA tensors of one device, enqueued on that
// device's current PyTorch CUDA stream (so they order with the kernels around them and return without waiting).
// bf16, fp16, fp32, fp64, int32, int64 reduce natively (kAvg is ncclAvg); all_gather / broadcast also take 8-bit
// types. Compiled only when ALIGNTRAIN_WITH_NCCL is defined (//third_party:nccl defines it when NCCL is found).
//
// Bootstrap (as llm.c does it): the group's rank 0 calls ncclGetUniqueId and broadcasts the id over the group's CPU
// communicator (MPI), then every rank calls ncclCommInitRank. The CPU communicator is kept for barrier() and split().
// Failures throw std::runtime_error naming the NCCL call, file:line and NCCL's error string.
#pragma once

#ifdef ALIGNTRAIN_WITH_NCCL

#include <nccl.h>

#include <memory>

#include "trainer/runtime/communicator.h"

namespace aligntrain::runtime {

class World;

// Makes GPU (local_rank % visible device count) this process's current CUDA device and returns its index.
// Throws std::runtime_error when no GPU is visible.
int select_cuda_device(const World& world);

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `bootstrap` (a CPU communicator of the same ranks, e.g. an MpiCommunicator): creates the NCCL
  // communicator of those ranks on CUDA device `device`.
  NcclCommunicator(std::unique_ptr<Communicator> bootstrap, int device);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return bootstrap_->rank(); }
  int size() const override { return bootstrap_->size(); }
  int device() const { return device_; }
  void all_reduce(at::Tensor& tensor, ReduceOp op) override;
  at::Tensor all_gather(const at::Tensor& tensor, int64_t dim = 0) override;
  at::Tensor reduce_scatter(const at::Tensor& tensor, ReduceOp op, int64_t dim = 0) override;
  void broadcast(at::Tensor& tensor, int root) override;
  // Waits for the current stream's work, then a host barrier over the bootstrap communicator.
  void barrier() override;
  // Splits the bootstrap communicator and bootstraps a new NCCL communicator over each part.
  std::unique_ptr<Communicator> split(int color, int key) override;

 private:
  void check_tensor(const at::Tensor& tensor, const char* op) const;

  std::unique_ptr<Communicator> bootstrap_;
  int device_ = 0;
  ncclComm_t comm_ = nullptr;
};

}  // namespace aligntrain::runtime

#endif  // ALIGNTRAIN_WITH_NCCL
