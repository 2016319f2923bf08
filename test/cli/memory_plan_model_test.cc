// The terms of `plan`'s per-rank peak (trainer/cli/memory_plan.h) on a small shape, derived by hand in the comments;
// test/cli/memory_plan_test.sh holds the whole prediction against measured runs.
#include <gtest/gtest.h>

#include "trainer/cli/memory_plan.h"

namespace aligntrain::cli {
namespace {

// hidden 8, intermediate 16, 2 heads of 4 (2 kv heads), 1 layer, vocabulary 32, untied.
model::ModelConfig small() {
  model::ModelConfig c;
  c.vocab_size = 32;
  c.hidden_size = 8;
  c.intermediate_size = 16;
  c.num_layers = 1;
  c.num_heads = 2;
  c.num_kv_heads = 2;
  c.head_dim = 4;
  return c;
}

StageMemoryWork sft(int rows, int length) {
  StageMemoryWork w;
  w.path = LossPath::kSft;
  w.policy = small();
  w.rows = rows;
  w.max_length = length;
  return w;
}

TEST(MemoryPlan, ResidentStateAndItsShards) {
  // Parameters: q, k, v, o 4·8·8 = 256; MLP 3·8·16 = 384; norms 16 → 656; embedding and head 2·256; final norm 8
  // → 1,176.
  const auto m = plan_stage_memory(sft(1, 4));
  EXPECT_DOUBLE_EQ(m.weights, 1176 * 4.0);
  EXPECT_DOUBLE_EQ(m.gradients, 1176 * 4.0);
  EXPECT_DOUBLE_EQ(m.optimizer, 1176 * 8.0);
  // Tensor parallel 2: projections, embedding and head halve, the 3 norms (24) stay: (1176 − 24)/2 + 24 = 600.
  auto tp = sft(1, 4);
  tp.tp = 2;
  EXPECT_DOUBLE_EQ(plan_stage_memory(tp).weights, 600 * 4.0);
  // ZeRO-1 over 2 data-parallel ranks halves the optimizer state; bf16 adds fp32 master weights (12 bytes a
  // parameter) and stores weights and gradients in 2.
  auto z = sft(1, 4);
  z.dp = 2;
  z.zero1 = true;
  EXPECT_DOUBLE_EQ(plan_stage_memory(z).optimizer, 1176 * 4.0);
  auto bf = sft(1, 4);
  bf.bytes = 2;
  bf.master_weights = true;
  EXPECT_DOUBLE_EQ(plan_stage_memory(bf).optimizer, 1176 * 12.0);
  EXPECT_DOUBLE_EQ(plan_stage_memory(bf).weights, 1176 * 2.0);
}

TEST(MemoryPlan, Activations) {
  // Per token and layer (T = 4): 4·(6·8 + 3·8 + 2·8 + 4·16) = 608, + 4·2 heads' lse + 8 (1/rms) + 4·4 (mask) = 640;
  // final norm 4·2·8 + 4 = 68; rotary tables 2·4·4 = 32 → 740 a token, × 4 tokens = 2,960.
  EXPECT_DOUBLE_EQ(plan_stage_memory(sft(1, 4)).activations, 2960.0);
  // Checkpointing keeps each layer's input (4·8), the bool mask (T = 4 bytes), the final norm and the tables:
  // (32 + 4 + 68 + 32) · 4 = 544.
  auto ck = sft(1, 4);
  ck.checkpointing = true;
  EXPECT_DOUBLE_EQ(plan_stage_memory(ck).activations, 544.0);
}

TEST(MemoryPlan, SftPeakIsTheLmHeadForward) {
  // rows 2 × T 4: N = 8 tokens, n = 6 positions with a label; the logits chunk holds all 6 rows (c = 6).
  // A = 8 · 740 = 5,920; final hidden 8·8·4 = 256; hidden rows and their gradient 2 · 6·8·4 = 384; the head's weight
  // gradient 32·8·4 = 1,024; logits 4·6·32 = 768 and a block (all 6 rows) 768 → 9,120 above the resident state
  // (the backward holds 7,648; the optimizer step G 4,704 + the clip's fp64 slices of the 256-element head 4,096).
  const auto m = plan_stage_memory(sft(2, 4));
  EXPECT_EQ(m.phase, "lm-head forward");
  EXPECT_DOUBLE_EQ(m.moment, 9120.0);
  EXPECT_DOUBLE_EQ(m.peak, 1176 * 12.0 + 9120.0);
  // A second micro-batch's forward holds the first one's gradients (the head's among them).
  auto acc = sft(2, 4);
  acc.accumulation = 2;
  EXPECT_DOUBLE_EQ(plan_stage_memory(acc).moment, 9120.0 - 1024.0 + 1176 * 4.0);
}

TEST(MemoryPlan, FrozenModelsResidentOrPrecomputed) {
  auto live = sft(2, 4);
  live.path = LossPath::kResponses;
  live.live.push_back({small(), 4});
  const auto l = plan_stage_memory(live);
  EXPECT_DOUBLE_EQ(l.frozen, 1176 * 4.0);
  auto pre = live;
  pre.precomputed = pre.live;
  pre.live.clear();
  const auto p = plan_stage_memory(pre);
  EXPECT_DOUBLE_EQ(p.frozen, 0.0);
  // Without the reference's weights and forward, the peak drops by at least its weights.
  EXPECT_LE(p.peak, l.peak - 1176 * 4.0);
}

}  // namespace
}  // namespace aligntrain::cli
