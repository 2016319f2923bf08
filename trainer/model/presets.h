// Embedded model presets: random-initialised Llama-family models that need no files. With the byte-level
// tokenizer (vocab 261) they make the demo and the tests self-contained.
//
//   tiny-llama     2 layers, hidden 64, 4 heads / 2 kv heads (GQA), tied embeddings           ~0.1M params
//   tiny-llama-4l  as tiny-llama with 4 layers
//   tiny-qwen2     Qwen2 (q/k/v biases), 2 layers, hidden 64
//   tiny-qwen3     Qwen3 (q/k RMSNorm, head_dim 32 ≠ hidden/heads), 2 layers, hidden 64
//   small-llama    6 layers, hidden 384, 6 heads / 2 kv heads, intermediate 1024              ~9.6M params
#pragma once

#include <string>
#include <vector>

#include "trainer/model/model_config.h"

namespace aligntrain::model {

// The preset's config; throws UsageError listing the presets for an unknown name.
ModelConfig preset_config(const std::string& name);
std::vector<std::string> preset_names();

}  // namespace aligntrain::model
