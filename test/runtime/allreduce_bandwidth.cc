// all_reduce bandwidth of the world's CPU communicator, fp32 sum, 1 MB to 256 MB (not a test).
//
//   mpirun --oversubscribe -np 2 --bind-to none allreduce_bandwidth [max_megabytes]
//
// Prints, on rank 0, per message size: the mean time of one all_reduce and the bandwidths as nccl-tests defines them
// (algbw = bytes / time; busbw = algbw * 2 (n - 1) / n, the traffic per rank of a ring all-reduce).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "trainer/runtime/communicator.h"
#include "trainer/runtime/communicators.h"
#include "trainer/runtime/world.h"

namespace {

using aligntrain::runtime::Communicator;
using aligntrain::runtime::ReduceOp;

// Mean seconds of one all_reduce of `bytes` of fp32, after two untimed ones.
double time_all_reduce(Communicator& comm, int64_t bytes, int iterations) {
  at::Tensor t = at::ones({bytes / 4}, at::kFloat);
  for (int i = 0; i < 2; ++i) comm.all_reduce(t, ReduceOp::kSum);
  comm.barrier();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) comm.all_reduce(t, ReduceOp::kSum);
  comm.barrier();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iterations;
}

}  // namespace

int main(int argc, char** argv) {
  aligntrain::runtime::World world(&argc, &argv);
  at::set_num_threads(1);
  const int max_mb = argc > 1 ? std::atoi(argv[1]) : 256;
  auto groups = aligntrain::runtime::make_groups(world, 1, aligntrain::runtime::Device::kCpu);
  Communicator& comm = *groups.world;
  const int n = comm.size();
  if (comm.rank() == 0) {
    std::printf("all_reduce fp32 sum, %d ranks\n%10s %12s %14s %14s\n", n, "MB", "time (ms)", "algbw (GB/s)",
                "busbw (GB/s)");
  }
  for (int mb = 1; mb <= max_mb; mb *= 2) {
    const int64_t bytes = int64_t{mb} << 20;
    const int iterations = std::clamp(512 / mb, 5, 50);
    const double seconds = time_all_reduce(comm, bytes, iterations);
    const double algbw = bytes / seconds / 1e9;
    const double busbw = n > 1 ? algbw * 2.0 * (n - 1) / n : 0.0;
    if (comm.rank() == 0) std::printf("%10d %12.3f %14.2f %14.2f\n", mb, seconds * 1e3, algbw, busbw);
    std::fflush(stdout);
  }
  world.exit(0);
}
