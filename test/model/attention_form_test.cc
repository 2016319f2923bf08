// The two forms in which attention calls scaled-dot-product attention (trainer/model/attention.h): grouped key-value
// heads passed as they are (enable_gqa) or repeated over their query heads first. CUDA picks the repeated form where
// the fused memory-efficient kernel needs it; both must give the same attention, for causal, padded and packed
// (block-diagonal) batches, and CPU must keep the grouped form.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "test/util/tolerance.h"
#include "trainer/model/attention.h"

namespace aligntrain::model {
namespace {

TEST(AttentionForm, RepeatsKvHeadsOnlyWhereCudaNeedsIt) {
  const c10::Device cpu(c10::kCPU), cuda(c10::kCUDA, 0);
  for (bool mask : {false, true}) {
    for (auto dtype : {at::kFloat, at::kBFloat16}) EXPECT_FALSE(repeat_kv_heads(cpu, dtype, mask, true));
  }
  EXPECT_FALSE(repeat_kv_heads(cuda, at::kBFloat16, false, true));  // flash takes grouped heads, is_causal
  EXPECT_FALSE(repeat_kv_heads(cuda, at::kHalf, false, true));
  EXPECT_TRUE(repeat_kv_heads(cuda, at::kBFloat16, true, true));    // a mask: memory-efficient, no enable_gqa
  EXPECT_TRUE(repeat_kv_heads(cuda, at::kFloat, false, true));      // fp32: no flash
  EXPECT_FALSE(repeat_kv_heads(cuda, at::kBFloat16, true, false));  // nothing to repeat without groups
}

// [1, 1, T, T] masks: causal within documents given by segment ids, and padding (keys and queries past `real`).
at::Tensor block_causal(const std::vector<int64_t>& segment) {
  const auto s = at::tensor(segment, at::kLong);
  const int64_t t = s.size(0);
  const auto idx = at::arange(t);
  auto m = (idx.view({1, t}) <= idx.view({t, 1})).logical_and(s.view({t, 1}) == s.view({1, t}));
  m = m.logical_and((s != 0).view({1, t})).logical_or(at::eye(t, at::kBool));
  return m.view({1, 1, t, t});
}

TEST(AttentionForm, RepeatedAndGroupedHeadsAgree) {
  at::manual_seed(3);
  const int64_t b = 2, h = 8, kv = 2, t = 12, d = 16;
  const auto q = at::randn({b, h, t, d}), k = at::randn({b, kv, t, d}), v = at::randn({b, kv, t, d});
  const std::vector<std::optional<at::Tensor>> masks = {
      std::nullopt,                                               // plain causal
      block_causal({1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0}),         // right padding
      block_causal({1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3}),         // three packed documents
  };
  for (const auto& mask : masks) {
    const auto grouped = attend(q, k, v, mask, /*causal=*/true, /*repeat_kv=*/false);
    const auto repeated = attend(q, k, v, mask, /*causal=*/true, /*repeat_kv=*/true);
    EXPECT_TRUE(testing::near_in_scale(repeated, grouped, 1e-6));
    // and both are attention: query 0 of a document sees only itself, so its output is its own value row
    EXPECT_TRUE(testing::near_in_scale(grouped.select(2, 0), v.repeat_interleave(h / kv, 1).select(2, 0), 1e-6));
  }
  // The packed mask really separates documents: document 2's first query sees only itself, unlike plain causal.
  const auto packed = attend(q, k, v, masks[2], true, true), causal = attend(q, k, v, std::nullopt, true, true);
  const auto own = v.repeat_interleave(h / kv, 1).select(2, 4);
  EXPECT_TRUE(testing::near_in_scale(packed.select(2, 4), own, 1e-6));
  EXPECT_FALSE(testing::near_in_scale(causal.select(2, 4), own, 1e-3));
}

}  // namespace
}  // namespace aligntrain::model
