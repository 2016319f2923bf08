// runtime::configure_cuda_allocator: expandable segments unless the user configured the CUDA allocator.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "trainer/runtime/cuda_alloc_conf.h"

namespace aligntrain::runtime {
namespace {

TEST(CudaAllocConf, DefaultsToExpandableSegments) {
  unsetenv("PYTORCH_ALLOC_CONF");
  unsetenv("PYTORCH_CUDA_ALLOC_CONF");
  EXPECT_STREQ(configure_cuda_allocator(), "expandable_segments:True");
  ASSERT_NE(std::getenv("PYTORCH_CUDA_ALLOC_CONF"), nullptr);
  EXPECT_STREQ(std::getenv("PYTORCH_CUDA_ALLOC_CONF"), "expandable_segments:True");
}

TEST(CudaAllocConf, KeepsTheUsersSetting) {
  unsetenv("PYTORCH_ALLOC_CONF");
  setenv("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:256", 1);
  EXPECT_STREQ(configure_cuda_allocator(), "max_split_size_mb:256");
  EXPECT_STREQ(std::getenv("PYTORCH_CUDA_ALLOC_CONF"), "max_split_size_mb:256");

  unsetenv("PYTORCH_CUDA_ALLOC_CONF");
  setenv("PYTORCH_ALLOC_CONF", "expandable_segments:False", 1);  // the newer name counts too
  EXPECT_STREQ(configure_cuda_allocator(), "expandable_segments:False");
  EXPECT_EQ(std::getenv("PYTORCH_CUDA_ALLOC_CONF"), nullptr);
  unsetenv("PYTORCH_ALLOC_CONF");
}

}  // namespace
}  // namespace aligntrain::runtime
