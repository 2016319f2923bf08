// See layout.h: world = tp × dp with tensor-parallel ranks consecutive (rank = dp_rank * tp + tp_rank).
#include "trainer/runtime/layout.h"

#include <stdexcept>
#include <string>

#include "common/errors.h"

namespace aligntrain::runtime {

Layout Layout::make(int world_size, int rank, int tp) {
  if (world_size < 1) {
    throw std::invalid_argument("world size must be >= 1 (got " + std::to_string(world_size) + ")");
  }
  if (rank < 0 || rank >= world_size) {
    throw std::invalid_argument("rank " + std::to_string(rank) + " is outside a world of " +
                                std::to_string(world_size));
  }
  if (tp < 1) {
    throw UsageError("the tensor-parallel degree (parallel.tensor) must be >= 1 (got " + std::to_string(tp) + ")");
  }
  if (world_size % tp != 0) {
    throw UsageError("the tensor-parallel degree (parallel.tensor = " + std::to_string(tp) +
                     ") must divide the world size (" + std::to_string(world_size) + ")");
  }
  Layout layout;
  layout.world = world_size;
  layout.tp = tp;
  layout.dp = world_size / tp;
  layout.rank = rank;
  layout.tp_rank = rank % tp;
  layout.dp_rank = rank / tp;
  return layout;
}

}  // namespace aligntrain::runtime
