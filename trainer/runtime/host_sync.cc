// See host_sync.h.
#include "trainer/runtime/host_sync.h"

#include <ATen/ATen.h>

#include <atomic>

namespace aligntrain::runtime {
namespace {

std::atomic<int64_t> count{0};

}  // namespace

int64_t host_syncs() { return count.load(); }

at::Tensor to_host(const at::Tensor& t) {
  ++count;
  return t.to(at::kCPU);
}

template <class T>
T host_value(const at::Tensor& t) {
  ++count;
  return t.item<T>();
}

template double host_value<double>(const at::Tensor&);
template float host_value<float>(const at::Tensor&);
template int64_t host_value<int64_t>(const at::Tensor&);

}  // namespace aligntrain::runtime
