// See allocator.h.
#include "trainer/runtime/allocator.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace aligntrain::runtime {

const char* keep_freed_memory() {
  const char* mode = std::getenv("ALIGNTRAIN_MALLOC");
  if (mode != nullptr && std::strcmp(mode, "default") == 0) return "default";
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 2047 << 20);
  mallopt(M_TOP_PAD, 64 << 20);
  return "keep";
}

}  // namespace aligntrain::runtime
