// See mpi_test_main.h.
#include "test/util/mpi_test_main.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cstdio>

namespace aligntrain::testing {

namespace {

const runtime::World* g_world = nullptr;

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

}  // namespace aligntrain::testing

int main(int argc, char** argv) {
  aligntrain::runtime::World world(&argc, &argv);
  aligntrain::testing::g_world = &world;
  at::set_num_threads(1);
  ::testing::InitGoogleTest(&argc, argv);
  if (world.rank() != 0) {
    GTEST_FLAG_SET(output, "");  // only rank 0 writes the XML report
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new aligntrain::testing::RankFailurePrinter(world.rank()));
  }
  const int failed = RUN_ALL_TESTS();
  world.exit(world.all_ok(failed == 0) ? 0 : 1);
}
