// The counting CPU allocator: exact bytes of live CPU tensors and their peak.
#include "trainer/runtime/cpu_memory.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace aligntrain::runtime {
namespace {

class CpuMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override { track_cpu_memory(); }
};

TEST_F(CpuMemoryTest, CountsATensorsBytesAndItsRelease) {
  ASSERT_TRUE(cpu_memory_tracked());
  const int64_t before = cpu_memory().current_bytes;
  {
    auto t = at::empty({1000, 37}, at::kFloat);  // 148,000 bytes
    EXPECT_EQ(cpu_memory().current_bytes - before, 1000 * 37 * 4);
    t.fill_(1.0f);
    EXPECT_EQ(t.sum().item<float>(), 37000.0f);
  }
  EXPECT_EQ(cpu_memory().current_bytes, before);
}

TEST_F(CpuMemoryTest, PeakGrowsByTheTensorsBytesAndResetStartsFromTheLiveBytes) {
  reset_cpu_memory_peak();
  const auto base = cpu_memory();
  EXPECT_EQ(base.peak_bytes, base.current_bytes);
  {
    auto a = at::zeros({512, 1024}, at::kDouble);  // 4 MiB
    auto b = at::zeros({256}, at::kInt);           // 1 KiB
    EXPECT_EQ(cpu_memory().peak_bytes - base.peak_bytes, 512 * 1024 * 8 + 256 * 4);
  }
  // Freed: the live bytes are back, the peak remembers them until a reset.
  EXPECT_EQ(cpu_memory().current_bytes, base.current_bytes);
  EXPECT_EQ(cpu_memory().peak_bytes - base.peak_bytes, 512 * 1024 * 8 + 256 * 4);
  reset_cpu_memory_peak();
  EXPECT_EQ(cpu_memory().peak_bytes, base.current_bytes);
  { auto c = at::ones({100}, at::kFloat); }
  EXPECT_EQ(cpu_memory().peak_bytes - base.current_bytes, 400);
}

TEST_F(CpuMemoryTest, CountsTheResultsAndTemporariesOfOps) {
  const auto x = at::randn({64, 128});
  const auto w = at::randn({32, 128});
  reset_cpu_memory_peak();
  const int64_t live = cpu_memory().current_bytes;
  auto y = at::matmul(x, w.t());  // [64, 32]
  EXPECT_EQ(cpu_memory().current_bytes - live, 64 * 32 * 4);
  auto z = y.clone();
  EXPECT_EQ(cpu_memory().current_bytes - live, 2 * 64 * 32 * 4);
  EXPECT_GE(cpu_memory().peak_bytes - live, 2 * 64 * 32 * 4);
  // A zero-byte tensor counts nothing and frees cleanly.
  { auto e = at::empty({0}, at::kFloat); }
  EXPECT_EQ(cpu_memory().current_bytes - live, 2 * 64 * 32 * 4);
}

TEST_F(CpuMemoryTest, InstallingTwiceKeepsTheCount) {
  auto t = at::empty({1024}, at::kByte);
  const int64_t live = cpu_memory().current_bytes;
  track_cpu_memory();
  EXPECT_EQ(cpu_memory().current_bytes, live);
  t = at::Tensor();
  EXPECT_EQ(cpu_memory().current_bytes, live - 1024);
}

}  // namespace
}  // namespace aligntrain::runtime
