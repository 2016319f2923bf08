// `aligntrain report RUN_DIR`: report.html rewritten from a run folder's files alone (trainer/metrics/report.h), on
// rank 0.
#include <spdlog/spdlog.h>

#include "trainer/cli/commands.h"
#include "trainer/metrics/report.h"

namespace aligntrain::cli {

int report(const runtime::World& world, const std::string& run_dir) {
  if (!world.is_root()) return kExitOk;
  const auto run = metrics::read_run(run_dir);
  const std::string path = metrics::write_report(run);
  spdlog::info("{}: {} stage(s), {} metrics lines", path, run.stages.size(), run.lines.size());
  return kExitOk;
}

}  // namespace aligntrain::cli
