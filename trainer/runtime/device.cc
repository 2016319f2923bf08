// See device.h.
#include "trainer/runtime/device.h"

#include <torch/cuda.h>

#include "common/errors.h"

namespace aligntrain::runtime {

c10::Device select_device(const std::string& name, int local_rank) {
  const bool have_cuda = torch::cuda::is_available();
  if (name == "cpu" || (name == "auto" && !have_cuda)) return c10::Device(c10::kCPU);
  if (name != "cuda" && name != "auto") throw UsageError("unknown device `" + name + "` (expected auto, cpu or cuda)");
  if (!have_cuda) throw UsageError("device `cuda` was asked for but LibTorch sees no CUDA GPU");
  const int count = static_cast<int>(torch::cuda::device_count());
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank % count));
}

}  // namespace aligntrain::runtime
