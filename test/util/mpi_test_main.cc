// See mpi_test_main.h.
#include "test/util/mpi_test_main.h"

#include <cstdlib>

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

namespace aligntrain::testing {

namespace {

const runtime::World* g_world = nullptr;
std::vector<std::string> g_args;  // arguments left after gtest's

// Failures of ranks other than 0, one line each with the rank.
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: failure\n%s\n", rank_, result.file_name() ? result.file_name() : "?",
                 result.line_number(), result.summary());
  }

 private:
  int rank_;
};

}  // namespace

const runtime::World& world() { return *g_world; }

bool has_flag(const char* flag) { return std::find(g_args.begin(), g_args.end(), flag) != g_args.end(); }

}  // namespace aligntrain::testing

int main(int argc, char** argv) {
  aligntrain::runtime::World world(&argc, &argv);
  aligntrain::testing::g_world = &world;
  at::set_num_threads(1);
  if (world.rank() != 0) {
    // Only rank 0 reports to Bazel: gtest installs its XML writer and premature-exit marker during
    // InitGoogleTest, from these variables, so another rank writing the same files must not see them.
    ::unsetenv("XML_OUTPUT_FILE");
    ::unsetenv("GTEST_OUTPUT");
    ::unsetenv("TEST_PREMATURE_EXIT_FILE");
    GTEST_FLAG_SET(output, "");
  }
  ::testing::InitGoogleTest(&argc, argv);
  aligntrain::testing::g_args.assign(argv + 1, argv + argc);
  if (world.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new aligntrain::testing::RankFailurePrinter(world.rank()));
  }
  const int failed = RUN_ALL_TESTS();
  world.exit(world.all_ok(failed == 0) ? 0 : 1);
}
