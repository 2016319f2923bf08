// Logging for every rank: rank 0 writes info and above to the console, other ranks only warnings and errors,
// prefixed with their rank; once a run's output folder is known, rank 0 also writes everything to
// <output_dir>/aligntrain.log. Built on spdlog (the default logger), so code logs with spdlog::info(...).
#pragma once

#include <string>

namespace aligntrain::runtime {

// Installs the console logger. `verbose` lowers the console level to debug.
void init_logging(int rank, int world_size, bool verbose);

// Adds a file sink at `path` on rank 0 (a no-op on other ranks).
// Throws std::runtime_error naming the path if it cannot be opened.
void add_log_file(const std::string& path);

// Flushes every sink (call before exiting).
void flush_logs();

}  // namespace aligntrain::runtime
