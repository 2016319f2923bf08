// See cuda_memory.h.
#include "trainer/runtime/cuda_memory.h"

#include <c10/cuda/CUDACachingAllocator.h>

namespace aligntrain::runtime {

CudaMemoryPeak cuda_memory_peak(const c10::Device& device) {
  namespace alloc = c10::cuda::CUDACachingAllocator;
  const auto stats = alloc::getDeviceStats(device.index() < 0 ? 0 : device.index());
  const auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
  return {stats.allocated_bytes[all].peak, stats.reserved_bytes[all].peak};
}

}  // namespace aligntrain::runtime
