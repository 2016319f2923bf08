// See cuda_alloc_conf.h.
#include "trainer/runtime/cuda_alloc_conf.h"

#include <cstdlib>
#include <initializer_list>

namespace aligntrain::runtime {

const char* configure_cuda_allocator() {
  for (const char* name : {"PYTORCH_ALLOC_CONF", "PYTORCH_CUDA_ALLOC_CONF"}) {
    if (const char* value = std::getenv(name); value != nullptr) return value;
  }
  static const char kDefault[] = "expandable_segments:True";
  setenv("PYTORCH_CUDA_ALLOC_CONF", kDefault, /*overwrite=*/0);
  return kDefault;
}

}  // namespace aligntrain::runtime
