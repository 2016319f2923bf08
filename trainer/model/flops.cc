// See flops.h.
#include "trainer/model/flops.h"

namespace aligntrain::model {

int64_t matmul_parameters(const ModelConfig& c) {
  const int64_t embedding = c.vocab_size * c.hidden_size;
  // parameter_count counts a tied matrix once and an untied model's two; the input embedding is a lookup.
  return c.tie_word_embeddings ? parameter_count(c) : parameter_count(c) - embedding;
}

double attention_forward_flops(const ModelConfig& c, double keys) {
  return 4.0 * static_cast<double>(c.num_layers * c.num_heads * c.head_dim) * keys;
}

double forward_flops_per_token(const ModelConfig& c, double keys) {
  return 2.0 * static_cast<double>(matmul_parameters(c)) + attention_forward_flops(c, keys);
}

double train_flops_per_token(const ModelConfig& c, double keys) { return 3.0 * forward_flops_per_token(c, keys); }

double causal_mean_keys(double length) { return (length + 1.0) / 2.0; }

double activation_bytes_per_token_layer(const ModelConfig& c, double bytes) {
  const double kv = static_cast<double>(c.num_kv_heads * c.head_dim);
  return bytes * (6.0 * static_cast<double>(c.hidden_size) + 2.0 * kv + 4.0 * static_cast<double>(c.intermediate_size));
}

}  // namespace aligntrain::model
