// Building the process groups of a run (DESIGN.md §7): the world, its tensor-parallel groups (consecutive ranks) and
// its data-parallel groups, on the backend that fits the tensors' device. Groups are plain owned objects handed to
// whoever needs them; there is no global distributed state.
//
//   world 4, tp 2:  tp groups {0,1} {2,3}   dp groups {0,2} {1,3}   (layout.h)
//
// Also the shape helpers the backends share (namespace detail), so that every backend checks arguments alike.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>

#include "trainer/runtime/communicator.h"
#include "trainer/runtime/layout.h"

namespace aligntrain::runtime {

class World;

enum class Device { kCpu, kCuda };

struct Groups {
  std::unique_ptr<Communicator> world, tp, dp;
  // The world again, on the CPU (MPI, or SelfCommunicator for one rank) whatever the device: for host values that
  // every rank must agree on (the stop flag), so that reducing them never waits for a device.
  std::unique_ptr<Communicator> host;
  Layout layout;
};

// Collective over the world. A world of one, and any group of one, gets SelfCommunicator; otherwise kCpu gives
// MpiCommunicator and kCuda NcclCommunicator on select_cuda_device(world). Throws UsageError when tp does not divide
// the world size, or when kCuda is asked for in a build without NCCL.
Groups make_groups(const World& world, int tp, Device device);

namespace detail {

// `dim` wrapped into [0, tensor.dim()); throws std::invalid_argument naming `op` when out of range.
int64_t checked_dim(const at::Tensor& tensor, int64_t dim, const char* op);
// Throws std::invalid_argument unless 0 <= root < size.
void check_root(int root, int size, const char* op);
// Throws std::invalid_argument for an undefined tensor.
void check_defined(const at::Tensor& tensor, const char* op);
// A contiguous [size, *shape] buffer of every rank's tensor → the rank-ordered concatenation along `dim`.
at::Tensor concat_gathered(const at::Tensor& gathered, int64_t dim);
// `tensor` laid out as a contiguous [size, *chunk] buffer whose block r is chunk r along `dim` (no copy when dim is 0
// and `tensor` is contiguous). Throws std::invalid_argument unless tensor.size(dim) divides by `size`.
at::Tensor blocks_for_scatter(const at::Tensor& tensor, int size, int64_t dim, const char* op);

}  // namespace detail
}  // namespace aligntrain::runtime
