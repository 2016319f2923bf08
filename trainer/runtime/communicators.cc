// See communicators.h.
#include "trainer/runtime/communicators.h"

#include <ATen/ATen.h>
#include <mpi.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "trainer/runtime/communicator_mpi.h"
#include "trainer/runtime/communicator_nccl.h"
#include "trainer/runtime/communicator_self.h"
#include "trainer/runtime/world.h"

namespace aligntrain::runtime {
namespace {

// The group of `group_size` ranks sharing `color` (ordered by `key`); SelfCommunicator when the group is one rank.
// Every rank must call it with the same `group_size` (it is collective over `parent` otherwise).
std::unique_ptr<Communicator> subgroup(Communicator& parent, int group_size, int color, int key) {
  if (group_size == 1) return std::make_unique<SelfCommunicator>();
  return parent.split(color, key);
}

#ifdef ALIGNTRAIN_WITH_NCCL
std::unique_ptr<Communicator> on_gpu(std::unique_ptr<Communicator> cpu, int device) {
  if (cpu->size() == 1) return cpu;  // SelfCommunicator works for CUDA tensors too
  return std::make_unique<NcclCommunicator>(std::move(cpu), device);
}
#endif

}  // namespace

Groups make_groups(const World& world, int tp, Device device) {
  Groups groups;
  groups.layout = Layout::make(world.size(), world.rank(), tp);
  const Layout& layout = groups.layout;
  if (world.size() == 1) {
    groups.world = std::make_unique<SelfCommunicator>();
    groups.tp = std::make_unique<SelfCommunicator>();
    groups.dp = std::make_unique<SelfCommunicator>();
    groups.host = std::make_unique<SelfCommunicator>();
    return groups;
  }
#ifndef ALIGNTRAIN_WITH_NCCL
  if (device == Device::kCuda) {
    throw UsageError("multi-GPU runs need NCCL, but this build of aligntrain has none (rebuild where CUDA and the "
                     "torch wheel's NCCL are installed)");
  }
#endif
  if (!world.uses_mpi()) throw std::logic_error("a world of more than one rank without MPI");

  std::unique_ptr<Communicator> all = MpiCommunicator::duplicate(MPI_COMM_WORLD);
  groups.host = MpiCommunicator::duplicate(MPI_COMM_WORLD);
  std::unique_ptr<Communicator> tp_group = subgroup(*all, layout.tp, layout.dp_rank, layout.tp_rank);
  std::unique_ptr<Communicator> dp_group = subgroup(*all, layout.dp, layout.tp_rank, layout.dp_rank);
#ifdef ALIGNTRAIN_WITH_NCCL
  if (device == Device::kCuda) {
    const int gpu = select_cuda_device(world);
    all = on_gpu(std::move(all), gpu);
    tp_group = on_gpu(std::move(tp_group), gpu);
    dp_group = on_gpu(std::move(dp_group), gpu);
  }
#endif
  groups.world = std::move(all);
  groups.tp = std::move(tp_group);
  groups.dp = std::move(dp_group);
  return groups;
}

namespace detail {

int64_t checked_dim(const at::Tensor& tensor, int64_t dim, const char* op) {
  check_defined(tensor, op);
  const int64_t rank = tensor.dim();
  if (dim < -rank || dim >= rank || rank == 0) {
    throw std::invalid_argument(std::string(op) + ": dim " + std::to_string(dim) + " is out of range for a tensor of " +
                                std::to_string(rank) + " dimensions");
  }
  return dim < 0 ? dim + rank : dim;
}

void check_root(int root, int size, const char* op) {
  if (root < 0 || root >= size) {
    throw std::invalid_argument(std::string(op) + ": root " + std::to_string(root) + " is not a rank of a group of " +
                                std::to_string(size));
  }
}

void check_defined(const at::Tensor& tensor, const char* op) {
  if (!tensor.defined()) throw std::invalid_argument(std::string(op) + ": the tensor is undefined");
}

at::Tensor concat_gathered(const at::Tensor& gathered, int64_t dim) {
  if (dim == 0) {  // [size, s0, ...] is already the concatenation along dim 0
    std::vector<int64_t> shape(gathered.sizes().begin() + 1, gathered.sizes().end());
    shape[0] *= gathered.size(0);
    return gathered.view(shape);
  }
  return at::cat(gathered.unbind(0), dim);
}

at::Tensor blocks_for_scatter(const at::Tensor& tensor, int size, int64_t dim, const char* op) {
  if (tensor.size(dim) % size != 0) {
    throw std::invalid_argument(std::string(op) + ": size " + std::to_string(tensor.size(dim)) + " of dim " +
                                std::to_string(dim) + " does not divide by the group size " + std::to_string(size));
  }
  if (dim == 0 && tensor.is_contiguous()) {
    std::vector<int64_t> shape = {size, tensor.size(0) / size};
    shape.insert(shape.end(), tensor.sizes().begin() + 1, tensor.sizes().end());
    return tensor.view(shape);
  }
  return at::stack(tensor.chunk(size, dim), 0);
}

}  // namespace detail
}  // namespace aligntrain::runtime
