// The MPI backend of Communicator (DESIGN.md §7): collectives on CPU tensors over an MPI communicator that this object
// owns (a duplicate of its parent, so its traffic never mixes with other users of the parent).
//
// dtypes: all_reduce / reduce_scatter take fp32, fp64, int32, int64 natively and bf16 / fp16 staged through fp32
// (MPI has no 16-bit float type; one fp32 reduction and one rounding at the end is more accurate than rounding at
// every hop, at the price of moving twice the bytes). all_gather / broadcast move any fixed-width dtype as raw words.
// kAvg on integers is the sum divided by size() rounding toward zero (what NCCL's ncclAvg does).
//
// Every MPI return code is checked (the World sets MPI_ERRORS_RETURN; the duplicate sets it again) and a failure
// throws std::runtime_error naming the call, the rank and MPI's error string. MPI counts are int: transfers above
// `max_count_per_call` elements (INT_MAX by default) are split into several calls.
#pragma once

#include <mpi.h>

#include <climits>
#include <cstdint>
#include <memory>

#include "trainer/runtime/communicator.h"

namespace aligntrain::runtime {

class MpiCommunicator final : public Communicator {
 public:
  // Collective over `parent`: MPI_Comm_dup of it. `max_count_per_call` bounds the element count of one MPI call
  // (tests lower it to exercise the chunked path).
  static std::unique_ptr<MpiCommunicator> duplicate(MPI_Comm parent, int64_t max_count_per_call = INT_MAX);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_reduce(at::Tensor& tensor, ReduceOp op) override;
  at::Tensor all_gather(const at::Tensor& tensor, int64_t dim = 0) override;
  at::Tensor reduce_scatter(const at::Tensor& tensor, ReduceOp op, int64_t dim = 0) override;
  void broadcast(at::Tensor& tensor, int root) override;
  void barrier() override;
  // MPI_Comm_split; `color` must be >= 0 (every rank joins a group).
  std::unique_ptr<Communicator> split(int color, int key) override;

 private:
  // Takes ownership of `comm` (freed in the destructor).
  MpiCommunicator(MPI_Comm comm, int64_t max_count_per_call);

  void check(int rc, const char* call) const;
  void all_reduce_contiguous(at::Tensor& buffer, ReduceOp op);
  void all_gather_contiguous(const at::Tensor& send, at::Tensor& gathered);
  void reduce_scatter_contiguous(const at::Tensor& blocks, at::Tensor& out, ReduceOp op);

  MPI_Comm comm_ = MPI_COMM_NULL;
  int64_t max_count_ = INT_MAX;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace aligntrain::runtime
