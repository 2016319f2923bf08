// Version information printed by `aligntrain --version`: project version, git revision, LibTorch version.
#pragma once

#include <string>

namespace aligntrain {

inline constexpr const char* kVersion = "0.1.0";

// One line: "aligntrain 0.1.0 (git abc123, LibTorch 2.11.0)".
std::string version_line();

}  // namespace aligntrain
