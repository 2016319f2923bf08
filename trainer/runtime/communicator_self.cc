// See communicator_self.h.
#include "trainer/runtime/communicator_self.h"

#include <stdexcept>
#include <string>

#include "trainer/runtime/communicators.h"

namespace aligntrain::runtime {

void SelfCommunicator::all_reduce(at::Tensor& tensor, ReduceOp) { detail::check_defined(tensor, "all_reduce"); }

at::Tensor SelfCommunicator::all_gather(const at::Tensor& tensor, int64_t dim) {
  detail::checked_dim(tensor, dim, "all_gather");
  return tensor.clone(at::MemoryFormat::Contiguous);
}

at::Tensor SelfCommunicator::reduce_scatter(const at::Tensor& tensor, ReduceOp, int64_t dim) {
  detail::checked_dim(tensor, dim, "reduce_scatter");
  return tensor.clone(at::MemoryFormat::Contiguous);
}

void SelfCommunicator::broadcast(at::Tensor& tensor, int root) {
  detail::check_defined(tensor, "broadcast");
  detail::check_root(root, 1, "broadcast");
}

std::unique_ptr<Communicator> SelfCommunicator::split(int color, int) {
  if (color < 0) throw std::invalid_argument("split: color must be >= 0 (got " + std::to_string(color) + ")");
  return std::make_unique<SelfCommunicator>();
}

}  // namespace aligntrain::runtime
