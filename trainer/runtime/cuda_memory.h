// Peak CUDA memory of this process on one device, from PyTorch's caching allocator: what tensors held at most
// (allocated) and what the allocator held from the driver at most (reserved: allocated plus its cache and gaps).
#pragma once

#include <c10/core/Device.h>

#include <cstdint>

namespace aligntrain::runtime {

struct CudaMemoryPeak {
  int64_t allocated_bytes = 0;
  int64_t reserved_bytes = 0;
};

// `device` must be a CUDA device this process has used.
CudaMemoryPeak cuda_memory_peak(const c10::Device& device);

}  // namespace aligntrain::runtime
