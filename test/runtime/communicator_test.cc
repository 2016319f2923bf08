// Every collective of the CPU backends, per dtype and reduction, against exact values computed from the ranks.
//
// One binary, two worlds: under `mpirun -np 2` the communicators are MPI ones (and the chunked-transfer tests run with
// a lowered per-call count); started alone, the world is one process and every group is a SelfCommunicator. Values
// are small integers and halves, exact in every dtype tested (bf16 included), so results are compared with equality.
// In a build with NCCL, `--cuda` runs the same tests on CUDA tensors through NcclCommunicator (bootstrapped over the
// world's CPU communicator: alone, a one-rank NCCL communicator; under mpirun, one GPU per rank).
//
// Per rank r the input is v(r, i) = (i - 6) * (r + 1) + r over the flattened index i: sums and averages are mixed in
// sign and parity (int64 averages round toward zero) and the maximum comes from different ranks at different i.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "common/errors.h"
#include "test/util/mpi_test_main.h"
#include "trainer/runtime/communicator_mpi.h"
#include "trainer/runtime/communicator_nccl.h"
#include "trainer/runtime/communicators.h"
#include "trainer/runtime/layout.h"
#include "trainer/runtime/world.h"

namespace aligntrain::runtime {
namespace {

// Where the tensors under test live: the CPU, or with --cuda (GPU hosts, NCCL builds) the rank's GPU.
const at::Device& test_device() {
  static const at::Device device = [] {
    if (!aligntrain::testing::has_flag("--cuda")) return at::Device(at::kCPU);
#ifdef ALIGNTRAIN_WITH_NCCL
    return at::Device(at::kCUDA, select_cuda_device(aligntrain::testing::world()));
#else
    throw std::runtime_error("--cuda: this build has no NCCL");
#endif
  }();
  return device;
}

bool on_cuda() { return test_device().is_cuda(); }

// The communicator of the whole world for tensors on test_device().
std::unique_ptr<Communicator> world_group() {
  std::unique_ptr<Communicator> cpu = make_groups(aligntrain::testing::world(), 1, Device::kCpu).world;
#ifdef ALIGNTRAIN_WITH_NCCL
  if (on_cuda()) return std::make_unique<NcclCommunicator>(std::move(cpu), test_device().index());
#endif
  return cpu;
}

at::TensorOptions options(at::ScalarType dtype) { return at::TensorOptions().dtype(dtype).device(test_device()); }

at::Tensor rank_values(int rank, at::IntArrayRef shape, at::ScalarType dtype) {
  const int64_t n = c10::multiply_integers(shape);
  return ((at::arange(n, at::kDouble) - 6) * (rank + 1) + rank).reshape(shape).to(dtype);
}

// The reduction over ranks 0..size-1 of rank_values, computed here (int64 in int64, floats in fp64).
at::Tensor expected_reduction(at::IntArrayRef shape, at::ScalarType dtype, ReduceOp op, int size) {
  const bool integral = at::isIntegralType(dtype, /*includeBool=*/false);
  const at::ScalarType work = integral ? at::kLong : at::kDouble;
  at::Tensor acc = rank_values(0, shape, work);
  for (int r = 1; r < size; ++r) {
    const at::Tensor v = rank_values(r, shape, work);
    acc = op == ReduceOp::kMax ? at::maximum(acc, v) : acc + v;
  }
  if (op == ReduceOp::kAvg) acc = integral ? acc.div(size, "trunc") : acc / size;
  return acc.to(dtype);
}

// rank_values on test_device(): the input of a collective.
at::Tensor input(int rank, at::IntArrayRef shape, at::ScalarType dtype) {
  return rank_values(rank, shape, dtype).to(test_device());
}

// `got` is on test_device() and equal (dtype, shape, values) to `want`.
::testing::AssertionResult equals(const at::Tensor& got, const at::Tensor& want) {
  if (got.device() != test_device()) return ::testing::AssertionFailure() << "on " << got.device() << ", not " << test_device();
  if (got.scalar_type() != want.scalar_type() || !at::equal(got.cpu(), want.cpu())) {
    return ::testing::AssertionFailure() << "got\n" << got.cpu() << "\nwant\n" << want.cpu();
  }
  return ::testing::AssertionSuccess();
}

std::string dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "fp32";
    case at::kDouble: return "fp64";
    case at::kLong: return "int64";
    case at::kBFloat16: return "bf16";
    default: return at::toString(dtype);
  }
}

std::string op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "sum";
    case ReduceOp::kMax: return "max";
    case ReduceOp::kAvg: return "avg";
  }
  return "?";
}

const auto kDtypes = ::testing::Values(at::kFloat, at::kDouble, at::kLong, at::kBFloat16);
const auto kOps = ::testing::Values(ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kAvg);

// ---- all_reduce ---------------------------------------------------------------------------------------------------

class AllReduceTest : public ::testing::TestWithParam<std::tuple<at::ScalarType, ReduceOp>> {};

TEST_P(AllReduceTest, EveryRankGetsTheReduction) {
  const auto [dtype, op] = GetParam();
  auto comm = world_group();
  at::Tensor t = input(comm->rank(), {3, 4}, dtype);
  comm->all_reduce(t, op);
  EXPECT_EQ(t.scalar_type(), dtype);
  EXPECT_TRUE(equals(t, expected_reduction({3, 4}, dtype, op, comm->size())));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, AllReduceTest, ::testing::Combine(kDtypes, kOps), [](const auto& info) {
  return dtype_name(std::get<0>(info.param)) + "_" + op_name(std::get<1>(info.param));
});

// ---- all_gather ---------------------------------------------------------------------------------------------------

class AllGatherTest : public ::testing::TestWithParam<std::tuple<at::ScalarType, int64_t>> {};

TEST_P(AllGatherTest, ConcatenatesInRankOrder) {
  const auto [dtype, dim] = GetParam();
  auto comm = world_group();
  const at::Tensor out = comm->all_gather(input(comm->rank(), {2, 3}, dtype), dim);
  std::vector<at::Tensor> parts;
  for (int r = 0; r < comm->size(); ++r) parts.push_back(rank_values(r, {2, 3}, dtype));
  EXPECT_TRUE(equals(out, at::cat(parts, dim)));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, AllGatherTest, ::testing::Combine(kDtypes, ::testing::Values(0, 1)),
                         [](const auto& info) {
                           return dtype_name(std::get<0>(info.param)) + "_dim" + std::to_string(std::get<1>(info.param));
                         });

// ---- reduce_scatter -----------------------------------------------------------------------------------------------

class ReduceScatterTest : public ::testing::TestWithParam<std::tuple<at::ScalarType, ReduceOp, int64_t>> {};

TEST_P(ReduceScatterTest, RankKeepsItsChunkOfTheReduction) {
  const auto [dtype, op, dim] = GetParam();
  auto comm = world_group();
  const std::vector<int64_t> shape = dim == 0 ? std::vector<int64_t>{2 * comm->size(), 3}
                                              : std::vector<int64_t>{3, 2 * comm->size()};
  const at::Tensor out = comm->reduce_scatter(input(comm->rank(), shape, dtype), op, dim);
  const at::Tensor expected = expected_reduction(shape, dtype, op, comm->size()).chunk(comm->size(), dim)[comm->rank()];
  EXPECT_EQ(out.scalar_type(), dtype);
  EXPECT_TRUE(equals(out, expected)) << out;
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ReduceScatterTest, ::testing::Combine(kDtypes, kOps, ::testing::Values(0, 1)),
                         [](const auto& info) {
                           return dtype_name(std::get<0>(info.param)) + "_" + op_name(std::get<1>(info.param)) +
                                  "_dim" + std::to_string(std::get<2>(info.param));
                         });

// ---- broadcast ----------------------------------------------------------------------------------------------------

class BroadcastTest : public ::testing::TestWithParam<at::ScalarType> {};

TEST_P(BroadcastTest, EveryRankGetsTheLastRanksValues) {
  const at::ScalarType dtype = GetParam();
  auto comm = world_group();
  const int root = comm->size() - 1;  // rank 1 under mpirun -np 2
  at::Tensor t = input(comm->rank(), {5, 2}, dtype);
  comm->broadcast(t, root);
  EXPECT_TRUE(equals(t, rank_values(root, {5, 2}, dtype)));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, BroadcastTest, kDtypes, [](const auto& info) { return dtype_name(info.param); });

// ---- barrier and split --------------------------------------------------------------------------------------------

TEST(Communicator, BarrierReturns) {
  auto comm = world_group();
  comm->barrier();
  comm->barrier();
}

TEST(Communicator, SplitByRankGivesGroupsOfOne) {
  auto comm = world_group();
  auto alone = comm->split(/*color=*/comm->rank(), /*key=*/0);
  ASSERT_NE(alone, nullptr);
  EXPECT_EQ(alone->size(), 1);
  EXPECT_EQ(alone->rank(), 0);
  at::Tensor t = input(comm->rank(), {4}, at::kFloat);
  alone->all_reduce(t, ReduceOp::kSum);
  EXPECT_TRUE(equals(t, input(comm->rank(), {4}, at::kFloat)));
  EXPECT_TRUE(equals(alone->all_gather(t), t));
  alone->barrier();
}

TEST(Communicator, SplitOrdersRanksByKey) {
  auto comm = world_group();
  auto reversed = comm->split(/*color=*/0, /*key=*/-comm->rank());
  EXPECT_EQ(reversed->size(), comm->size());
  EXPECT_EQ(reversed->rank(), comm->size() - 1 - comm->rank());
  const at::Tensor ranks = reversed->all_gather(at::full({1}, comm->rank(), options(at::kLong)));
  EXPECT_TRUE(equals(ranks, at::arange(comm->size() - 1, -1, -1, at::kLong)));
}

// ---- non-contiguous inputs ----------------------------------------------------------------------------------------

TEST(NonContiguous, AllReduceWritesThroughATransposedView) {
  auto comm = world_group();
  at::Tensor t = input(comm->rank(), {4, 6}, at::kFloat).t();
  ASSERT_FALSE(t.is_contiguous());
  comm->all_reduce(t, ReduceOp::kSum);
  EXPECT_TRUE(equals(t, expected_reduction({4, 6}, at::kFloat, ReduceOp::kSum, comm->size()).t()));
}

TEST(NonContiguous, AllReduceOfAColumnSliceLeavesTheRestAlone) {
  auto comm = world_group();
  at::Tensor base = at::full({4, 8}, 100, options(at::kBFloat16));
  at::Tensor slice = base.narrow(1, 2, 3);
  slice.copy_(input(comm->rank(), {4, 3}, at::kBFloat16));
  comm->all_reduce(slice, ReduceOp::kAvg);
  EXPECT_TRUE(equals(slice, expected_reduction({4, 3}, at::kBFloat16, ReduceOp::kAvg, comm->size())));
  EXPECT_TRUE(equals(base.narrow(1, 0, 2), at::full({4, 2}, 100, at::kBFloat16)));
  EXPECT_TRUE(equals(base.narrow(1, 5, 3), at::full({4, 3}, 100, at::kBFloat16)));
}

TEST(NonContiguous, AllGatherOfATransposedInput) {
  auto comm = world_group();
  const at::Tensor out = comm->all_gather(input(comm->rank(), {3, 2}, at::kDouble).t(), 1);
  std::vector<at::Tensor> parts;
  for (int r = 0; r < comm->size(); ++r) parts.push_back(rank_values(r, {3, 2}, at::kDouble).t());
  EXPECT_TRUE(equals(out, at::cat(parts, 1)));
}

TEST(NonContiguous, ReduceScatterOfATransposedInput) {
  auto comm = world_group();
  const int64_t n = 2 * comm->size();
  const at::Tensor out = comm->reduce_scatter(input(comm->rank(), {n, 3}, at::kLong).t(), ReduceOp::kSum, 1);
  const at::Tensor expected =
      expected_reduction({n, 3}, at::kLong, ReduceOp::kSum, comm->size()).t().chunk(comm->size(), 1)[comm->rank()];
  EXPECT_TRUE(equals(out, expected)) << out;
}

TEST(NonContiguous, BroadcastIntoAStridedView) {
  auto comm = world_group();
  const int root = comm->size() - 1;
  at::Tensor base = at::zeros({6, 4}, options(at::kFloat));
  at::Tensor rows = base.slice(0, 0, 6, 2);  // rows 0, 2, 4
  rows.copy_(input(comm->rank(), {3, 4}, at::kFloat));
  comm->broadcast(rows, root);
  EXPECT_TRUE(equals(rows, rank_values(root, {3, 4}, at::kFloat)));
  EXPECT_TRUE(equals(base.slice(0, 1, 6, 2), at::zeros({3, 4}, at::kFloat)));
}

// ---- MPI transfers split into several calls (per-call count lowered to 5 elements) --------------------------------

class Chunked : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!aligntrain::testing::world().uses_mpi() || on_cuda()) GTEST_SKIP() << "MPI only (run under mpirun, without --cuda)";
    comm_ = MpiCommunicator::duplicate(MPI_COMM_WORLD, /*max_count_per_call=*/5);
  }
  std::unique_ptr<MpiCommunicator> comm_;
};

TEST_F(Chunked, AllReduce) {
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kLong}) {
    at::Tensor t = input(comm_->rank(), {23}, dtype);
    comm_->all_reduce(t, ReduceOp::kAvg);
    EXPECT_TRUE(equals(t, expected_reduction({23}, dtype, ReduceOp::kAvg, comm_->size()))) << dtype_name(dtype);
  }
}

TEST_F(Chunked, AllGather) {
  for (int64_t dim : {0, 1}) {
    const at::Tensor out = comm_->all_gather(input(comm_->rank(), {3, 7}, at::kFloat), dim);
    std::vector<at::Tensor> parts;
    for (int r = 0; r < comm_->size(); ++r) parts.push_back(rank_values(r, {3, 7}, at::kFloat));
    EXPECT_TRUE(equals(out, at::cat(parts, dim))) << "dim " << dim;
  }
}

TEST_F(Chunked, ReduceScatter) {
  const int64_t n = 3 * comm_->size();
  const at::Tensor out = comm_->reduce_scatter(input(comm_->rank(), {n, 4}, at::kDouble), ReduceOp::kMax, 0);
  const at::Tensor expected =
      expected_reduction({n, 4}, at::kDouble, ReduceOp::kMax, comm_->size()).chunk(comm_->size(), 0)[comm_->rank()];
  EXPECT_TRUE(equals(out, expected)) << out;
}

TEST_F(Chunked, Broadcast) {
  at::Tensor t = input(comm_->rank(), {23}, at::kBFloat16);
  comm_->broadcast(t, 0);
  EXPECT_TRUE(equals(t, rank_values(0, {23}, at::kBFloat16)));
}

// ---- argument errors (thrown on every rank before any communication) ----------------------------------------------

TEST(Errors, DimOutOfRange) {
  auto comm = world_group();
  const at::Tensor t = at::zeros({2, 2}, options(at::kFloat));
  EXPECT_THROW(comm->all_gather(t, 2), std::invalid_argument);
  EXPECT_THROW(comm->reduce_scatter(t, ReduceOp::kSum, -3), std::invalid_argument);
}

TEST(Errors, BroadcastRootOutOfRange) {
  auto comm = world_group();
  at::Tensor t = at::zeros({2}, options(at::kFloat));
  EXPECT_THROW(comm->broadcast(t, comm->size()), std::invalid_argument);
  EXPECT_THROW(comm->broadcast(t, -1), std::invalid_argument);
}

TEST(Errors, SplitWithNegativeColor) {
  auto comm = world_group();
  EXPECT_THROW(comm->split(-1, 0), std::invalid_argument);
}

TEST(Errors, ReduceScatterDimMustDivideByGroupSize) {
  auto comm = world_group();
  if (comm->size() == 1) GTEST_SKIP() << "every size divides by 1";
  EXPECT_THROW(comm->reduce_scatter(at::zeros({2 * comm->size() + 1}, options(at::kFloat)), ReduceOp::kSum), std::invalid_argument);
}

TEST(Errors, TensorOnTheWrongDevice) {
  if (!on_cuda()) GTEST_SKIP() << "needs --cuda";
  auto comm = world_group();
  at::Tensor t = at::zeros({2}, at::kFloat);  // a CPU tensor handed to NCCL
  EXPECT_THROW(comm->all_reduce(t, ReduceOp::kSum), std::invalid_argument);
}

TEST(Errors, MpiRejectsBoolReductions) {
  if (!aligntrain::testing::world().uses_mpi() || on_cuda()) GTEST_SKIP() << "MPI only (run under mpirun, without --cuda)";
  auto comm = MpiCommunicator::duplicate(MPI_COMM_WORLD);
  at::Tensor t = at::ones({3}, at::kBool);
  EXPECT_THROW(comm->all_reduce(t, ReduceOp::kSum), std::invalid_argument);
  at::Tensor gathered = comm->all_gather(t);  // moving bools is fine
  EXPECT_TRUE(equals(gathered, at::ones({3 * comm->size()}, at::kBool)));
}

// ---- layout and groups --------------------------------------------------------------------------------------------

TEST(Layout, RanksAreTensorParallelFirst) {
  const Layout l = Layout::make(8, 5, 2);
  EXPECT_EQ(l.world, 8);
  EXPECT_EQ(l.tp, 2);
  EXPECT_EQ(l.dp, 4);
  EXPECT_EQ(l.rank, 5);
  EXPECT_EQ(l.tp_rank, 1);
  EXPECT_EQ(l.dp_rank, 2);
  const Layout one = Layout::make(1, 0, 1);
  EXPECT_EQ(one.dp, 1);
  EXPECT_EQ(one.tp_rank, 0);
}

TEST(Layout, RejectsATensorDegreeThatDoesNotDivideTheWorld) {
  EXPECT_THROW(Layout::make(8, 0, 3), UsageError);
  EXPECT_THROW(Layout::make(8, 0, 0), UsageError);
  EXPECT_THROW(Layout::make(8, 0, -2), UsageError);
  EXPECT_THROW(Layout::make(8, 8, 2), std::invalid_argument);
}

TEST(Groups, AllTensorParallel) {
  const int size = aligntrain::testing::world().size();
  Groups g = make_groups(aligntrain::testing::world(), size, Device::kCpu);
  EXPECT_EQ(g.world->size(), size);
  EXPECT_EQ(g.tp->size(), size);
  EXPECT_EQ(g.tp->rank(), aligntrain::testing::world().rank());
  EXPECT_EQ(g.dp->size(), 1);
  EXPECT_EQ(g.layout.tp_rank, aligntrain::testing::world().rank());
  const at::Tensor ranks = g.tp->all_gather(at::full({1}, aligntrain::testing::world().rank(), at::kLong));
  EXPECT_TRUE(at::equal(ranks, at::arange(size, at::kLong)));
}

TEST(Groups, AllDataParallel) {
  const int size = aligntrain::testing::world().size();
  Groups g = make_groups(aligntrain::testing::world(), 1, Device::kCpu);
  EXPECT_EQ(g.tp->size(), 1);
  EXPECT_EQ(g.dp->size(), size);
  EXPECT_EQ(g.dp->rank(), aligntrain::testing::world().rank());
  at::Tensor t = at::ones({2}, at::kDouble);
  g.dp->all_reduce(t, ReduceOp::kSum);
  EXPECT_TRUE(at::equal(t, at::full({2}, size, at::kDouble)));
}

TEST(Groups, RejectsATensorDegreeThatDoesNotDivideTheWorld) {
  EXPECT_THROW(make_groups(aligntrain::testing::world(), aligntrain::testing::world().size() + 1, Device::kCpu), UsageError);
}

#ifndef ALIGNTRAIN_WITH_NCCL
TEST(Groups, CudaNeedsNccl) {
  if (aligntrain::testing::world().size() == 1) GTEST_SKIP() << "a world of one needs no NCCL";
  EXPECT_THROW(make_groups(aligntrain::testing::world(), 1, Device::kCuda), UsageError);
}
#endif

}  // namespace
}  // namespace aligntrain::runtime
