// Tensor-parallel layers behind model::LayerFactory (trainer/model/projection.h), so the model code is the same at
// every tensor-parallel degree. With p ranks in the group and this rank r:
//
//   column(in, out)   Y_r = X A_rᵀ + b_r, A split along its output rows: A_r is rows [r·out/p, (r+1)·out/p)
//                     (q, k, v, gate, up). Input: copy_to_group (replicated X; gradients all-reduced).
//   row(in, out)      Y = Σ_r X_r A_rᵀ + b, A split along its input columns; the partial products are
//                     all-reduced (reduce_from_group) and the replicated bias added once, after the reduce (o, down).
//   embedding         vocab rows [r·V/p, (r+1)·V/p): ids outside the shard give zeros, then all-reduce.
//   lm_head           logits for this rank's vocab shard only: [.., V/p]. Never gathered to the full vocabulary;
//                     see vocab_parallel.h for log-softmax, token log-probs, KL, JSD and top-k on sharded logits.
// Parameter names and local shapes match hf_names.h's Split table, so checkpoints load slice by slice.
#pragma once

#include <memory>

#include "trainer/model/projection.h"
#include "trainer/runtime/communicator.h"

namespace aligntrain::parallel {

// Layers sharded over `group` (which must outlive the model). A group of one gives plain dense layers' behaviour.
std::unique_ptr<model::LayerFactory> tensor_parallel_layer_factory(runtime::Communicator& group);

}  // namespace aligntrain::parallel
