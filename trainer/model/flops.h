// Arithmetic of a decoder-only model per token, for model-FLOPs utilisation (MFU) and memory estimates. The
// convention is PaLM's (Chowdhery et al. 2022, appendix B): a training token costs 6·N FLOPs for the N parameters
// that take part in a matrix product (2 in the forward, 4 in the backward) plus the attention products, which
// depend on how many keys each query sees. Recomputation (activation checkpointing) is not counted: MFU counts the
// model's FLOPs, not the hardware's.
#pragma once

#include <cstdint>

#include "trainer/model/model_config.h"

namespace aligntrain::model {

// Parameters that multiply each token's activations: every weight matrix of the layers and the LM head. An untied
// input embedding is a lookup and does not count; tied, the one matrix is the LM head's. Norm weights and biases
// are included (negligible).
int64_t matmul_parameters(const ModelConfig& config);

// Forward FLOPs of the attention products (q·kᵀ and the weighted sum of v) per query token that sees `keys` keys:
// 2 · 2 · layers · heads · head_dim · keys.
double attention_forward_flops(const ModelConfig& config, double keys);

// Forward FLOPs per token: 2 · matmul_parameters + attention_forward_flops.
double forward_flops_per_token(const ModelConfig& config, double keys);

// Training FLOPs per token (forward + backward = 3 forwards).
double train_flops_per_token(const ModelConfig& config, double keys);

// Mean number of keys a query sees under causal attention within documents of `length` tokens: (length + 1) / 2.
double causal_mean_keys(double length);

// Activation bytes per token and layer that a training forward keeps for the backward, with `bytes` per element
// (2 for bf16): the layer input, both norms' outputs, q, k, v, the attention output, the residual sum, and the MLP's
// gate, up, activation and product: 6·hidden + 2·kv_dim + 4·intermediate elements. With activation checkpointing a
// layer keeps only its input (hidden elements); the layer being recomputed holds the full set once.
double activation_bytes_per_token_layer(const ModelConfig& config, double bytes);

}  // namespace aligntrain::model
