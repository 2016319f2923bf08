// The rank layout: world = tp × dp with tensor-parallel ranks consecutive. Pure arithmetic.
//
//   world 8, tp 2:  rank = dp_index * 2 + tp_index
//     tp groups {0,1} {2,3} {4,5} {6,7}     dp groups {0,2,4,6} {1,3,5,7}
#pragma once

namespace aligntrain::runtime {

struct Layout {
  int world = 1, tp = 1, dp = 1;
  int rank = 0, tp_rank = 0, dp_rank = 0;

  // Throws UsageError if tp does not divide world.
  static Layout make(int world_size, int rank, int tp);
};

}  // namespace aligntrain::runtime
