// ZeRO-1 (trainer/optim/adamw.h with a zero_group): under `mpirun -np 2` each parameter's optimizer state lives on
// one rank, which updates it and broadcasts the result; the weights are bitwise those of unsharded AdamW with the
// same gradients, and each rank holds about half the state. Alone (a world of one) the group has one rank and
// nothing is sharded.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "test/util/mpi_test_main.h"
#include "trainer/optim/adamw.h"
#include "trainer/runtime/communicators.h"

namespace aligntrain {
namespace {

struct Spec {
  std::string name;
  std::vector<int64_t> shape;
  at::ScalarType dtype;
  bool decay;
};

// Sizes 1024, 1000, 512 (bf16), 500, 24. Dealt largest first to the least-loaded of 2 ranks (load in elements):
// 1024 → 0, 1000 → 1, 512 → 1 (1000 < 1024), 500 → 0 (1024 < 1512), 24 → 1 (1512 < 1524).
const std::vector<Spec> kSpecs = {
    {"embed", {32, 32}, at::kFloat, true},    {"norm", {1000}, at::kFloat, false},
    {"proj", {16, 32}, at::kBFloat16, true},  {"bias", {500}, at::kFloat, false},
    {"head", {4, 6}, at::kFloat, true},
};
// fp32 state bytes: 8 a parameter element (two moments), 12 for bf16 (and its master).
constexpr int64_t kRank0Bytes = 1024 * 8 + 500 * 8;            // embed, bias
constexpr int64_t kRank1Bytes = 1000 * 8 + 512 * 12 + 24 * 8;  // norm, proj, head
const std::map<std::string, int> kOwner = {{"embed", 0}, {"norm", 1}, {"proj", 1}, {"bias", 0}, {"head", 1}};

std::vector<at::Tensor> make_params() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(2024);
  std::vector<at::Tensor> out;
  for (const auto& s : kSpecs) out.push_back(at::randn(s.shape, gen).to(s.dtype).requires_grad_());
  return out;
}

std::vector<optim::ParamGroupEntry> entries(const std::vector<at::Tensor>& params) {
  std::vector<optim::ParamGroupEntry> out;
  for (size_t i = 0; i < params.size(); ++i) out.push_back({kSpecs[i].name, params[i], kSpecs[i].decay});
  return out;
}

TEST(Zero1, ShardedEqualsUnshardedBitwise) {
  auto groups = runtime::make_groups(testing::world(), 1, runtime::Device::kCpu);
  auto& dp = *groups.dp;
  optim::AdamWOptions options;
  options.weight_decay = 0.1;
  auto sharded = make_params(), plain = make_params();
  optim::AdamW zero(entries(sharded), options, &dp), ref(entries(plain), options);

  auto gen = at::make_generator<at::CPUGeneratorImpl>(77);  // the same gradients on every rank
  const double lrs[] = {1e-2, 5e-3, 2e-2, 1e-3};
  for (double lr : lrs) {
    for (size_t i = 0; i < kSpecs.size(); ++i) {
      const auto g = at::randn(kSpecs[i].shape, gen).to(kSpecs[i].dtype);
      sharded[i].mutable_grad() = g.clone();
      plain[i].mutable_grad() = g.clone();
    }
    zero.step(lr);
    ref.step(lr);
  }
  const auto init = make_params();
  for (size_t i = 0; i < kSpecs.size(); ++i) {
    EXPECT_EQ(sharded[i].scalar_type(), kSpecs[i].dtype);
    EXPECT_TRUE(at::equal(sharded[i], plain[i]))
        << kSpecs[i].name << " on rank " << dp.rank() << ": max diff "
        << (sharded[i].to(at::kFloat) - plain[i].to(at::kFloat)).abs().max().item<double>();
    EXPECT_FALSE(at::equal(sharded[i], init[i])) << kSpecs[i].name << " did not move";
  }
}

TEST(Zero1, StateIsShardedByTheDealingRule) {
  auto groups = runtime::make_groups(testing::world(), 1, runtime::Device::kCpu);
  auto& dp = *groups.dp;
  auto sharded = make_params(), plain = make_params();
  optim::AdamW zero(entries(sharded), {}, &dp), ref(entries(plain), {});
  const int64_t full = ref.state_bytes();
  EXPECT_EQ(full, kRank0Bytes + kRank1Bytes);

  std::set<std::string> names;
  for (const auto& [name, t] : zero.state_tensors()) names.insert(name);
  if (dp.size() == 1) {
    EXPECT_EQ(zero.state_bytes(), full);
    EXPECT_EQ(names.size(), ref.state_tensors().size());
    return;
  }
  ASSERT_EQ(dp.size(), 2);
  const int64_t mine = zero.state_bytes();
  EXPECT_EQ(mine, dp.rank() == 0 ? kRank0Bytes : kRank1Bytes);
  EXPECT_GT(mine, full * 4 / 10);
  EXPECT_LT(mine, full * 6 / 10);
  // Only the owned parameters' tensors are in this rank's checkpoint state.
  std::set<std::string> want;
  for (const auto& s : kSpecs) {
    if (kOwner.at(s.name) != dp.rank()) continue;
    want.insert("exp_avg." + s.name);
    want.insert("exp_avg_sq." + s.name);
    if (s.dtype != at::kFloat) want.insert("master." + s.name);
  }
  EXPECT_EQ(names, want);
  // Between them the ranks hold all of it.
  auto total = at::tensor({static_cast<double>(mine)}, at::kDouble);
  dp.all_reduce(total, runtime::ReduceOp::kSum);
  EXPECT_EQ(total.item<double>(), static_cast<double>(full));
}

}  // namespace
}  // namespace aligntrain
