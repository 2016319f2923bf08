// A stand-in for a training loop in which one rank fails mid-step (DESIGN.md §8): the last rank throws during step 3
// while the others are already waiting in that step's all_reduce. main() handles the exception the way aligntrain's
// main() does (trainer/main.cc fail()): print the error, then World::abort so the blocked ranks end too.
// Driven by failure_test.sh; exits 0 only if no rank failed (never, by design).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

#include "trainer/runtime/communicator.h"
#include "trainer/runtime/communicators.h"
#include "trainer/runtime/world.h"

namespace {

using aligntrain::runtime::Communicator;
using aligntrain::runtime::ReduceOp;

constexpr int kSteps = 10;
constexpr int kFailingStep = 3;

void train(Communicator& comm) {
  const int failing_rank = comm.size() - 1;
  for (int step = 0; step < kSteps; ++step) {
    at::Tensor grad = at::full({1 << 16}, static_cast<double>(step), at::kFloat);
    if (comm.rank() == failing_rank && step == kFailingStep) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the others are in all_reduce by now
      throw std::runtime_error("rank " + std::to_string(comm.rank()) + ": simulated failure in step " +
                               std::to_string(step));
    }
    comm.all_reduce(grad, ReduceOp::kAvg);
    if (comm.rank() == 0) std::printf("step %d done\n", step);
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  aligntrain::runtime::World world(&argc, &argv);
  at::set_num_threads(1);
  try {
    aligntrain::runtime::Groups groups = aligntrain::runtime::make_groups(world, 1, aligntrain::runtime::Device::kCpu);
    train(*groups.world);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    if (world.size() > 1) world.abort(1);
    world.exit(1);
  }
  world.exit(0);
}
