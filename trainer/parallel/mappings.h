// Megatron-style autograd mappings between a tensor-parallel group's replicated and sharded views, in conjugate
// pairs. Each is a no-op (identity both ways) for a group of one.
//
//   copy_to_group       forward: identity              backward: all-reduce (sum)
//   reduce_from_group   forward: all-reduce (sum)      backward: identity
//   scatter_to_group    forward: keep this rank's chunk of the last dim    backward: all-gather (last dim)
//   gather_from_group   forward: all-gather (last dim)                     backward: keep this rank's chunk
#pragma once

#include <ATen/core/Tensor.h>

#include "trainer/runtime/communicator.h"

namespace aligntrain::parallel {

at::Tensor copy_to_group(const at::Tensor& x, runtime::Communicator& group);
at::Tensor reduce_from_group(const at::Tensor& x, runtime::Communicator& group);
at::Tensor scatter_to_group(const at::Tensor& x, runtime::Communicator& group);
at::Tensor gather_from_group(const at::Tensor& x, runtime::Communicator& group);

// Not differentiable: the all-reduced maximum (for numerically stable softmaxes; a constant shift in the math).
at::Tensor all_reduce_max_detached(const at::Tensor& x, runtime::Communicator& group);

}  // namespace aligntrain::parallel
