// See communicator_nccl.h.
#ifdef ALIGNTRAIN_WITH_NCCL

#include "trainer/runtime/communicator_nccl.h"

#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>
#include <c10/core/Stream.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "trainer/runtime/communicators.h"
#include "trainer/runtime/world.h"

#define ALIGNTRAIN_NCCL_CHECK(call) ::aligntrain::runtime::check_nccl((call), #call, __FILE__, __LINE__)

namespace aligntrain::runtime {
namespace {

void check_nccl(ncclResult_t result, const char* call, const char* file, int line) {
  if (result == ncclSuccess) return;
  std::string message = std::string(file) + ":" + std::to_string(line) + ": " + call + " failed: " +
                        ncclGetErrorString(result);
  const char* last = ncclGetLastError(nullptr);
  if (last != nullptr && last[0] != '\0') message += std::string(" (") + last + ")";
  throw std::runtime_error(message);
}

ncclDataType_t nccl_type(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return ncclFloat32;
    case at::kDouble: return ncclFloat64;
    case at::kHalf: return ncclFloat16;
    case at::kBFloat16: return ncclBfloat16;
    case at::kLong: return ncclInt64;
    case at::kInt: return ncclInt32;
    case at::kChar: return ncclInt8;
    case at::kByte:
    case at::kBool: return ncclUint8;
    default:
      throw std::invalid_argument(std::string("NCCL communicator: unsupported dtype ") + at::toString(dtype));
  }
}

// The NCCL type of a reduction of `dtype` (8-bit and bool tensors only move).
ncclDataType_t nccl_reduction_type(at::ScalarType dtype, const char* op) {
  switch (dtype) {
    case at::kFloat:
    case at::kDouble:
    case at::kHalf:
    case at::kBFloat16:
    case at::kLong:
    case at::kInt: return nccl_type(dtype);
    default:
      throw std::invalid_argument(std::string(op) + ": cannot reduce dtype " + at::toString(dtype) +
                                  " (fp32, fp64, bf16, fp16, int32 or int64)");
  }
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return ncclSum;
    case ReduceOp::kMax: return ncclMax;
    case ReduceOp::kAvg: return ncclAvg;  // integers: sum / n rounded toward zero
  }
  throw std::invalid_argument("unknown ReduceOp");
}

// Device guards and stream waits go through c10's device-generic interfaces (implemented inside libc10_cuda), so this
// file calls no CUDA runtime function itself and needs no link to libcudart.
c10::Device cuda_device(int index) { return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index)); }

cudaStream_t current_stream(int device) {
  return c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device)).stream();
}

// Rank 0 of `bootstrap` makes the id; everyone else receives it over `bootstrap` as raw bytes.
ncclUniqueId shared_unique_id(Communicator& bootstrap) {
  ncclUniqueId id;
  std::memset(&id, 0, sizeof(id));
  if (bootstrap.rank() == 0) ALIGNTRAIN_NCCL_CHECK(ncclGetUniqueId(&id));
  at::Tensor bytes = at::empty({static_cast<int64_t>(sizeof(id))}, at::kByte);
  std::memcpy(bytes.data_ptr(), &id, sizeof(id));
  bootstrap.broadcast(bytes, 0);
  std::memcpy(&id, bytes.data_ptr(), sizeof(id));
  return id;
}

}  // namespace

int select_cuda_device(const World& world) {
  const int count = c10::cuda::device_count();
  if (count <= 0) {
    throw std::runtime_error("rank " + std::to_string(world.rank()) + ": no CUDA device is visible");
  }
  const int device = world.local_rank() % count;
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
  return device;
}

NcclCommunicator::NcclCommunicator(std::unique_ptr<Communicator> bootstrap, int device)
    : bootstrap_(std::move(bootstrap)), device_(device) {
  if (!bootstrap_) throw std::invalid_argument("NcclCommunicator: no bootstrap communicator");
  const ncclUniqueId id = shared_unique_id(*bootstrap_);
  const c10::DeviceGuard guard(cuda_device(device_));
  ALIGNTRAIN_NCCL_CHECK(ncclCommInitRank(&comm_, bootstrap_->size(), id, bootstrap_->rank()));
}

NcclCommunicator::~NcclCommunicator() {
  if (comm_ != nullptr) ncclCommDestroy(comm_);
}

void NcclCommunicator::check_tensor(const at::Tensor& tensor, const char* op) const {
  detail::check_defined(tensor, op);
  if (!tensor.is_cuda() || tensor.get_device() != device_) {
    throw std::invalid_argument(std::string(op) + ": the NCCL communicator takes tensors on cuda:" +
                                std::to_string(device_) + " (got one on " + tensor.device().str() + ")");
  }
}

void NcclCommunicator::all_reduce(at::Tensor& tensor, ReduceOp op) {
  check_tensor(tensor, "all_reduce");
  const ncclDataType_t type = nccl_reduction_type(tensor.scalar_type(), "all_reduce");
  const c10::DeviceGuard guard(cuda_device(device_));
  at::Tensor buffer = tensor.contiguous();
  ALIGNTRAIN_NCCL_CHECK(ncclAllReduce(buffer.data_ptr(), buffer.data_ptr(), buffer.numel(), type, nccl_op(op), comm_,
                                      current_stream(device_)));
  if (!buffer.is_same(tensor)) tensor.copy_(buffer);
}

at::Tensor NcclCommunicator::all_gather(const at::Tensor& tensor, int64_t dim) {
  check_tensor(tensor, "all_gather");
  dim = detail::checked_dim(tensor, dim, "all_gather");
  const ncclDataType_t type = nccl_type(tensor.scalar_type());
  const c10::DeviceGuard guard(cuda_device(device_));
  const at::Tensor send = tensor.contiguous();
  std::vector<int64_t> shape = {size()};
  shape.insert(shape.end(), tensor.sizes().begin(), tensor.sizes().end());
  at::Tensor gathered = at::empty(shape, send.options());
  ALIGNTRAIN_NCCL_CHECK(ncclAllGather(send.data_ptr(), gathered.data_ptr(), send.numel(), type, comm_,
                                      current_stream(device_)));
  return detail::concat_gathered(gathered, dim);
}

at::Tensor NcclCommunicator::reduce_scatter(const at::Tensor& tensor, ReduceOp op, int64_t dim) {
  check_tensor(tensor, "reduce_scatter");
  dim = detail::checked_dim(tensor, dim, "reduce_scatter");
  const ncclDataType_t type = nccl_reduction_type(tensor.scalar_type(), "reduce_scatter");
  const c10::DeviceGuard guard(cuda_device(device_));
  const at::Tensor blocks = detail::blocks_for_scatter(tensor, size(), dim, "reduce_scatter");
  at::Tensor out = at::empty(blocks.sizes().slice(1), blocks.options());
  ALIGNTRAIN_NCCL_CHECK(ncclReduceScatter(blocks.data_ptr(), out.data_ptr(), out.numel(), type, nccl_op(op), comm_,
                                          current_stream(device_)));
  return out;
}

void NcclCommunicator::broadcast(at::Tensor& tensor, int root) {
  check_tensor(tensor, "broadcast");
  detail::check_root(root, size(), "broadcast");
  const ncclDataType_t type = nccl_type(tensor.scalar_type());
  const c10::DeviceGuard guard(cuda_device(device_));
  at::Tensor buffer = tensor.contiguous();
  ALIGNTRAIN_NCCL_CHECK(ncclBroadcast(buffer.data_ptr(), buffer.data_ptr(), buffer.numel(), type, root, comm_,
                                      current_stream(device_)));
  if (!buffer.is_same(tensor)) tensor.copy_(buffer);
}

void NcclCommunicator::barrier() {
  c10::Stream(c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device_))).synchronize();
  bootstrap_->barrier();
}

std::unique_ptr<Communicator> NcclCommunicator::split(int color, int key) {
  return std::make_unique<NcclCommunicator>(bootstrap_->split(color, key), device_);
}

}  // namespace aligntrain::runtime

#endif  // ALIGNTRAIN_WITH_NCCL
