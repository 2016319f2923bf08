// Choosing the compute device: `auto` is CUDA when LibTorch sees a GPU, else the CPU; asking for `cuda` without one
// is a usage error rather than a silent fall-back.
#pragma once

#include <c10/core/Device.h>

#include <string>

namespace aligntrain::runtime {

// `name`: auto | cpu | cuda. Throws UsageError for cuda without a visible GPU or an unknown name.
c10::Device select_device(const std::string& name, int local_rank = 0);

}  // namespace aligntrain::runtime
