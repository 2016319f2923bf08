// See logging.h.
#include "trainer/runtime/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <stdexcept>

namespace aligntrain::runtime {

namespace {
int g_rank = 0;
}

void init_logging(int rank, int world_size, bool verbose) {
  g_rank = rank;
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  if (rank == 0) {
    console->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
    console->set_pattern("%^[%H:%M:%S %l]%$ %v");
  } else {
    console->set_level(spdlog::level::warn);
    console->set_pattern("%^[%H:%M:%S %l]%$ [rank " + std::to_string(rank) + "/" + std::to_string(world_size) +
                         "] %v");
  }
  auto logger = std::make_shared<spdlog::logger>("aligntrain", console);
  logger->set_level(spdlog::level::debug);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
}

void add_log_file(const std::string& path) {
  if (g_rank != 0) return;
  std::shared_ptr<spdlog::sinks::basic_file_sink_mt> file;
  try {
    file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false);
  } catch (const spdlog::spdlog_ex& e) {
    throw std::runtime_error("cannot open log file " + path + ": " + e.what());
  }
  file->set_level(spdlog::level::debug);
  file->set_pattern("[%Y-%m-%d %H:%M:%S.%e %l] %v");
  spdlog::default_logger()->sinks().push_back(file);
}

void flush_logs() { spdlog::default_logger()->flush(); }

}  // namespace aligntrain::runtime
