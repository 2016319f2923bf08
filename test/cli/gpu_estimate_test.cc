// `plan --gpu`'s arithmetic (trainer/model/flops.h, trainer/cli/gpu_estimate.h) on Llama-3.2-1B's shape, with the
// numbers derived by hand in the comments.
#include <gtest/gtest.h>

#include "trainer/cli/gpu_estimate.h"
#include "trainer/model/flops.h"

namespace aligntrain::cli {
namespace {

// Llama-3.2-1B: hidden 2048, 16 layers, 32 / 8 heads of 64, intermediate 8192, vocabulary 128256, tied.
model::ModelConfig llama_1b(int64_t layers = 16, bool tied = true) {
  model::ModelConfig c;
  c.vocab_size = 128256;
  c.hidden_size = 2048;
  c.intermediate_size = 8192;
  c.num_layers = layers;
  c.num_heads = 32;
  c.num_kv_heads = 8;
  c.head_dim = 64;
  c.tie_word_embeddings = tied;
  return c;
}

TEST(Flops, Llama1bParameters) {
  // layer: q 2048² + k, v 2·2048·512 + o 2048² = 10,485,760; MLP 3·2048·8192 = 50,331,648; two norms 4,096
  // → 60,821,504 × 16 = 973,144,064; + embedding 128256·2048 = 262,668,288 + final norm 2,048 = 1,235,814,400.
  EXPECT_EQ(model::matmul_parameters(llama_1b()), 1235814400);
  // Untied, the input embedding is a lookup: the same matmul parameters (the LM head is its own matrix).
  EXPECT_EQ(model::parameter_count(llama_1b(16, false)), 1235814400 + 262668288);
  EXPECT_EQ(model::matmul_parameters(llama_1b(16, false)), 1235814400);
}

TEST(Flops, PerToken) {
  const auto c = llama_1b();
  EXPECT_DOUBLE_EQ(model::causal_mean_keys(2048), 1024.5);
  // attention forward: 4 · 16 layers · 32 heads · 64 · 1024.5 keys = 134,283,264
  EXPECT_DOUBLE_EQ(model::attention_forward_flops(c, 1024.5), 134283264.0);
  // forward: 2 · 1,235,814,400 + 134,283,264 = 2,605,912,064; training: 3 × that
  EXPECT_DOUBLE_EQ(model::forward_flops_per_token(c, 1024.5), 2605912064.0);
  EXPECT_DOUBLE_EQ(model::train_flops_per_token(c, 1024.5), 7817736192.0);
  // bf16 activations: 2 · (6·2048 + 2·512 + 4·8192) = 92,160 bytes per token and layer
  EXPECT_DOUBLE_EQ(model::activation_bytes_per_token_layer(c, 2.0), 92160.0);
}

TEST(GpuEstimate, Chips) {
  EXPECT_EQ(find_chip("NVIDIA H100 80GB HBM3")->name, "H100 SXM");
  EXPECT_DOUBLE_EQ(find_chip("NVIDIA H100 80GB HBM3")->bf16_tflops, 989.0);
  EXPECT_EQ(find_chip("NVIDIA H100 PCIe")->name, "H100 PCIe");
  EXPECT_EQ(find_chip("NVIDIA H200")->name, "H200");
  EXPECT_DOUBLE_EQ(find_chip("nvidia h200")->bf16_tflops, 989.0);
  EXPECT_EQ(find_chip("NVIDIA GH200 480GB")->name, "GH200");
  EXPECT_FALSE(find_chip("Tesla T4").has_value());
  EXPECT_FALSE(find_chip("").has_value());
}

TEST(GpuEstimate, SftStep) {
  StageWork w;
  w.policy = llama_1b();
  w.rows_per_micro = 4;
  w.max_length = 2048;
  w.mean_keys = 1024.5;
  const auto e = estimate_stage(w, 989.0, 0.4);
  EXPECT_DOUBLE_EQ(e.flops_per_token, 7817736192.0);
  EXPECT_NEAR(e.tokens_per_s, 0.4 * 989e12 / 7817736192.0, 1e-6);  // ≈ 50,603 tokens/s
  EXPECT_NEAR(e.tokens_per_s, 50603.0, 1.0);
  // bf16 weights 2 + fp32 master 4 + fp32 grads 4 + moments 8 = 18 bytes per parameter: 20.72 GiB
  EXPECT_NEAR(e.state_gib, 1235814400.0 * 18 / (1 << 30), 1e-9);
  EXPECT_DOUBLE_EQ(e.frozen_gib, 0.0);
  // 4·2048 tokens · 16 layers · 92,160 bytes + 3 · 128 MiB
  EXPECT_NEAR(e.activation_gib, (8192.0 * 16 * 92160 + 3 * 128.0 * (1 << 20)) / (1 << 30), 1e-9);
  EXPECT_NEAR(e.total_gib(), e.state_gib + e.activation_gib, 1e-12);

  // Checkpointing keeps each layer's input (2048 bf16 values per token) and one layer's full set.
  w.checkpointing = true;
  const auto ck = estimate_stage(w, 989.0, 0.4);
  EXPECT_NEAR(ck.activation_gib, (8192.0 * (16 * 4096 + 92160) + 3 * 128.0 * (1 << 20)) / (1 << 30), 1e-9);
  EXPECT_LT(ck.activation_gib, e.activation_gib / 5);
  EXPECT_DOUBLE_EQ(ck.tokens_per_s, e.tokens_per_s);  // model FLOPs: recomputation is not counted
}

TEST(GpuEstimate, FrozenModelsAddTheirForwards) {
  StageWork w;
  w.policy = llama_1b();
  w.rows_per_micro = 4;
  w.max_length = 1024;
  w.mean_keys = model::causal_mean_keys(1024);
  const auto alone = estimate_stage(w, 989.0, 0.4);
  // KD: a teacher twice as deep runs forward on every token.
  const auto teacher = llama_1b(32);
  w.frozen = {teacher};
  w.resident = {teacher};
  const auto kd = estimate_stage(w, 989.0, 0.4);
  EXPECT_DOUBLE_EQ(kd.flops_per_token - alone.flops_per_token, model::forward_flops_per_token(teacher, 512.5));
  EXPECT_NEAR(kd.frozen_gib, model::parameter_count(teacher) * 2.0 / (1 << 30), 1e-9);
  EXPECT_LT(kd.tokens_per_s, alone.tokens_per_s);
  // fp32: 4-byte weights and no separate master copy (4 + 4 + 8 = 16 bytes per parameter).
  w.bf16 = false;
  EXPECT_NEAR(estimate_stage(w, 989.0, 0.4).state_gib, 1235814400.0 * 16 / (1 << 30), 1e-9);
}

}  // namespace
}  // namespace aligntrain::cli
