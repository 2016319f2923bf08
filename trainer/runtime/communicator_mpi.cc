// See communicator_mpi.h.
#include "trainer/runtime/communicator_mpi.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "trainer/runtime/communicators.h"

namespace aligntrain::runtime {
namespace {

std::string mpi_error_string(int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(rc, text, &length) != MPI_SUCCESS) return "MPI error " + std::to_string(rc);
  return std::string(text, length);
}

// The MPI type that carries one element of `dtype`. bf16 / fp16 travel as 16-bit words (only for moving data: their
// reductions are staged through fp32, see reduction_dtype).
MPI_Datatype element_type(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return MPI_FLOAT;
    case at::kDouble: return MPI_DOUBLE;
    case at::kLong: return MPI_INT64_T;
    case at::kInt: return MPI_INT32_T;
    case at::kShort: return MPI_INT16_T;
    case at::kChar: return MPI_INT8_T;
    case at::kByte:
    case at::kBool: return MPI_UINT8_T;
    case at::kBFloat16:
    case at::kHalf: return MPI_UINT16_T;
    default:
      throw std::invalid_argument(std::string("MPI communicator: unsupported dtype ") + at::toString(dtype));
  }
}

// The dtype in which a reduction of `dtype` runs: itself, or fp32 for the 16-bit floats MPI cannot add.
at::ScalarType reduction_dtype(at::ScalarType dtype, const char* op) {
  switch (dtype) {
    case at::kFloat:
    case at::kDouble:
    case at::kLong:
    case at::kInt: return dtype;
    case at::kBFloat16:
    case at::kHalf: return at::kFloat;
    default:
      throw std::invalid_argument(std::string(op) + ": cannot reduce dtype " + at::toString(dtype) +
                                  " (fp32, fp64, bf16, fp16, int32 or int64)");
  }
}

MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::kMax ? MPI_MAX : MPI_SUM; }

// kAvg = sum / size; integers round toward zero (as NCCL's ncclAvg does).
void divide_for_average(at::Tensor& sum, int size) {
  if (at::isFloatingType(sum.scalar_type())) {
    sum.div_(size);
  } else {
    sum.div_(size, "trunc");
  }
}

void check_cpu(const at::Tensor& tensor, const char* op) {
  detail::check_defined(tensor, op);
  if (!tensor.device().is_cpu()) {
    throw std::invalid_argument(std::string(op) + ": the MPI communicator takes CPU tensors (got one on " +
                                tensor.device().str() + "; CUDA tensors go through the NCCL communicator)");
  }
}

char* bytes_of(const at::Tensor& tensor) { return static_cast<char*>(tensor.data_ptr()); }

}  // namespace

std::unique_ptr<MpiCommunicator> MpiCommunicator::duplicate(MPI_Comm parent, int64_t max_count_per_call) {
  if (max_count_per_call < 1 || max_count_per_call > INT_MAX) {
    throw std::invalid_argument("MpiCommunicator: max_count_per_call must be in [1, INT_MAX] (got " +
                                std::to_string(max_count_per_call) + ")");
  }
  MPI_Comm comm = MPI_COMM_NULL;
  const int rc = MPI_Comm_dup(parent, &comm);
  if (rc != MPI_SUCCESS) throw std::runtime_error("MPI_Comm_dup failed: " + mpi_error_string(rc));
  return std::unique_ptr<MpiCommunicator>(new MpiCommunicator(comm, max_count_per_call));
}

MpiCommunicator::MpiCommunicator(MPI_Comm comm, int64_t max_count_per_call)
    : comm_(comm), max_count_(max_count_per_call) {
  try {
    check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  } catch (...) {
    MPI_Comm_free(&comm_);
    throw;
  }
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void MpiCommunicator::check(int rc, const char* call) const {
  if (rc == MPI_SUCCESS) return;
  throw std::runtime_error(std::string(call) + " failed on rank " + std::to_string(rank_) + " of " +
                           std::to_string(size_) + ": " + mpi_error_string(rc));
}

void MpiCommunicator::all_reduce(at::Tensor& tensor, ReduceOp op) {
  check_cpu(tensor, "all_reduce");
  at::Tensor buffer = tensor.to(reduction_dtype(tensor.scalar_type(), "all_reduce")).contiguous();
  all_reduce_contiguous(buffer, op);
  if (op == ReduceOp::kAvg) divide_for_average(buffer, size_);
  if (!buffer.is_same(tensor)) tensor.copy_(buffer);
}

void MpiCommunicator::all_reduce_contiguous(at::Tensor& buffer, ReduceOp op) {
  const MPI_Datatype type = element_type(buffer.scalar_type());
  const int64_t n = buffer.numel(), element = buffer.element_size();
  for (int64_t offset = 0; offset < n; offset += max_count_) {
    const int count = static_cast<int>(std::min(max_count_, n - offset));
    check(MPI_Allreduce(MPI_IN_PLACE, bytes_of(buffer) + offset * element, count, type, mpi_op(op), comm_),
          "MPI_Allreduce");
  }
}

at::Tensor MpiCommunicator::all_gather(const at::Tensor& tensor, int64_t dim) {
  check_cpu(tensor, "all_gather");
  dim = detail::checked_dim(tensor, dim, "all_gather");
  const at::Tensor send = tensor.contiguous();
  std::vector<int64_t> shape = {size_};
  shape.insert(shape.end(), tensor.sizes().begin(), tensor.sizes().end());
  at::Tensor gathered = at::empty(shape, send.options());
  all_gather_contiguous(send, gathered);
  return detail::concat_gathered(gathered, dim);
}

void MpiCommunicator::all_gather_contiguous(const at::Tensor& send, at::Tensor& gathered) {
  const MPI_Datatype type = element_type(send.scalar_type());
  const int64_t n = send.numel(), element = send.element_size();
  if (n <= max_count_) {
    check(MPI_Allgather(send.data_ptr(), static_cast<int>(n), type, gathered.data_ptr(), static_cast<int>(n), type,
                        comm_),
          "MPI_Allgather");
    return;
  }
  // Chunk [offset, offset + count) of every rank's block: one contiguous run of `count` elements sent, received
  // into a type whose extent is a whole block, so that rank r's run lands at block r.
  for (int64_t offset = 0; offset < n; offset += max_count_) {
    const int count = static_cast<int>(std::min(max_count_, n - offset));
    MPI_Datatype run = MPI_DATATYPE_NULL, strided = MPI_DATATYPE_NULL;
    check(MPI_Type_contiguous(count, type, &run), "MPI_Type_contiguous");
    int rc = MPI_Type_create_resized(run, 0, static_cast<MPI_Aint>(n * element), &strided);
    if (rc == MPI_SUCCESS) rc = MPI_Type_commit(&run);
    if (rc == MPI_SUCCESS) rc = MPI_Type_commit(&strided);
    if (rc == MPI_SUCCESS) {
      rc = MPI_Allgather(bytes_of(send) + offset * element, 1, run, bytes_of(gathered) + offset * element, 1, strided,
                         comm_);
    }
    if (strided != MPI_DATATYPE_NULL) MPI_Type_free(&strided);
    MPI_Type_free(&run);
    check(rc, "MPI_Allgather (chunked)");
  }
}

at::Tensor MpiCommunicator::reduce_scatter(const at::Tensor& tensor, ReduceOp op, int64_t dim) {
  check_cpu(tensor, "reduce_scatter");
  dim = detail::checked_dim(tensor, dim, "reduce_scatter");
  const at::ScalarType work = reduction_dtype(tensor.scalar_type(), "reduce_scatter");
  const at::Tensor blocks = detail::blocks_for_scatter(tensor.to(work), size_, dim, "reduce_scatter");
  at::Tensor out = at::empty(blocks.sizes().slice(1), blocks.options());
  reduce_scatter_contiguous(blocks, out, op);
  if (op == ReduceOp::kAvg) divide_for_average(out, size_);
  return out.to(tensor.scalar_type());
}

void MpiCommunicator::reduce_scatter_contiguous(const at::Tensor& blocks, at::Tensor& out, ReduceOp op) {
  const MPI_Datatype type = element_type(blocks.scalar_type());
  const int64_t m = out.numel(), element = out.element_size();
  if (m <= max_count_) {
    check(MPI_Reduce_scatter_block(blocks.data_ptr(), out.data_ptr(), static_cast<int>(m), type, mpi_op(op), comm_),
          "MPI_Reduce_scatter_block");
    return;
  }
  // Block r is reduced onto rank r, one chunk of at most max_count_ elements at a time.
  for (int root = 0; root < size_; ++root) {
    for (int64_t offset = 0; offset < m; offset += max_count_) {
      const int count = static_cast<int>(std::min(max_count_, m - offset));
      char* recv = root == rank_ ? bytes_of(out) + offset * element : nullptr;
      check(MPI_Reduce(bytes_of(blocks) + (root * m + offset) * element, recv, count, type, mpi_op(op), root, comm_),
            "MPI_Reduce");
    }
  }
}

void MpiCommunicator::broadcast(at::Tensor& tensor, int root) {
  check_cpu(tensor, "broadcast");
  detail::check_root(root, size_, "broadcast");
  at::Tensor buffer = tensor.contiguous();
  const MPI_Datatype type = element_type(buffer.scalar_type());
  const int64_t n = buffer.numel(), element = buffer.element_size();
  for (int64_t offset = 0; offset < n; offset += max_count_) {
    const int count = static_cast<int>(std::min(max_count_, n - offset));
    check(MPI_Bcast(bytes_of(buffer) + offset * element, count, type, root, comm_), "MPI_Bcast");
  }
  if (!buffer.is_same(tensor)) tensor.copy_(buffer);
}

void MpiCommunicator::barrier() { check(MPI_Barrier(comm_), "MPI_Barrier"); }

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key) {
  if (color < 0) throw std::invalid_argument("split: color must be >= 0 (got " + std::to_string(color) + ")");
  MPI_Comm part = MPI_COMM_NULL;
  check(MPI_Comm_split(comm_, color, key, &part), "MPI_Comm_split");
  return std::unique_ptr<Communicator>(new MpiCommunicator(part, max_count_));
}

}  // namespace aligntrain::runtime
