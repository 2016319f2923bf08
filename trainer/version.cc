// See version.h. The git revision comes from the stamped build_info.h (scripts/workspace_status.sh).
#include "trainer/version.h"

#include <torch/version.h>

#include "trainer/build_info.h"

namespace aligntrain {

std::string version_line() {
  return std::string("aligntrain ") + kVersion + " (git " + ALIGNTRAIN_GIT_REVISION + ", LibTorch " +
         TORCH_VERSION + ")";
}

}  // namespace aligntrain
