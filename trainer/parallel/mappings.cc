// See mappings.h.
#include "trainer/parallel/mappings.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdint>

namespace aligntrain::parallel {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The group travels through the autograd context as an address: it outlives every graph built over it.
void keep(AutogradContext* ctx, runtime::Communicator& group) {
  ctx->saved_data["group"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(&group));
}
runtime::Communicator& group_of(AutogradContext* ctx) {
  return *reinterpret_cast<runtime::Communicator*>(static_cast<intptr_t>(ctx->saved_data["group"].toInt()));
}

at::Tensor all_reduce_sum(const at::Tensor& x, runtime::Communicator& group) {
  at::Tensor out = x.contiguous().clone();
  group.all_reduce(out, runtime::ReduceOp::kSum);
  return out;
}

at::Tensor last_dim_chunk(const at::Tensor& x, runtime::Communicator& group) {
  const int64_t n = x.size(-1) / group.size();
  return x.narrow(-1, group.rank() * n, n).contiguous();
}

struct CopyToGroup : torch::autograd::Function<CopyToGroup> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, runtime::Communicator* g) {
    keep(ctx, *g);
    return x.view_as(x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    return {all_reduce_sum(grad[0], group_of(ctx)), at::Tensor()};
  }
};

struct ReduceFromGroup : torch::autograd::Function<ReduceFromGroup> {
  static at::Tensor forward(AutogradContext*, const at::Tensor& x, runtime::Communicator* g) {
    return all_reduce_sum(x, *g);
  }
  static variable_list backward(AutogradContext*, variable_list grad) { return {grad[0], at::Tensor()}; }
};

struct ScatterToGroup : torch::autograd::Function<ScatterToGroup> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, runtime::Communicator* g) {
    keep(ctx, *g);
    return last_dim_chunk(x, *g);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    return {group_of(ctx).all_gather(grad[0].contiguous(), -1), at::Tensor()};
  }
};

struct GatherFromGroup : torch::autograd::Function<GatherFromGroup> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, runtime::Communicator* g) {
    keep(ctx, *g);
    return g->all_gather(x.contiguous(), -1);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    return {last_dim_chunk(grad[0], group_of(ctx)), at::Tensor()};
  }
};

}  // namespace

at::Tensor copy_to_group(const at::Tensor& x, runtime::Communicator& g) {
  return g.size() == 1 ? x : CopyToGroup::apply(x, &g);
}
at::Tensor reduce_from_group(const at::Tensor& x, runtime::Communicator& g) {
  return g.size() == 1 ? x : ReduceFromGroup::apply(x, &g);
}
at::Tensor scatter_to_group(const at::Tensor& x, runtime::Communicator& g) {
  return g.size() == 1 ? x : ScatterToGroup::apply(x, &g);
}
at::Tensor gather_from_group(const at::Tensor& x, runtime::Communicator& g) {
  return g.size() == 1 ? x : GatherFromGroup::apply(x, &g);
}

at::Tensor all_reduce_max_detached(const at::Tensor& x, runtime::Communicator& g) {
  at::Tensor out = x.detach().contiguous().clone();
  if (g.size() > 1) g.all_reduce(out, runtime::ReduceOp::kMax);
  return out;
}

}  // namespace aligntrain::parallel
