// Helpers shared by tests: the Python interpreter of the project venv (for parity references), running a command,
// and a per-test scratch folder.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace aligntrain::testing {

// $ALIGNTRAIN_PYTHON (scripts/test.sh sets it to .venv/bin/python); else .venv/bin/python under the cwd.
inline std::string python() {
  if (const char* p = std::getenv("ALIGNTRAIN_PYTHON"); p && *p) return p;
  if (std::filesystem::exists(".venv/bin/python")) return ".venv/bin/python";
  throw std::runtime_error("set ALIGNTRAIN_PYTHON to the project venv's python (scripts/test.sh does)");
}

// Runs a shell command; throws with the command line if it exits non-zero.
inline void run_or_throw(const std::string& cmd) {
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("command failed: " + cmd);
}

// A fresh folder under $TEST_TMPDIR (Bazel) or the system temp folder.
inline std::filesystem::path scratch_dir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  auto dir = std::filesystem::path(base ? base : std::filesystem::temp_directory_path().string()) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace aligntrain::testing
