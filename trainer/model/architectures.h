// One entry per supported model family, as llama.cpp keeps per-architecture tables: its Hugging Face names and the
// traits that config.json parsing and writing, the name table (hf_names.h) and the decoder read. Adding a family
// (or an activation) means adding one entry here, not a branch in each of those places.
#pragma once

#include <string>
#include <vector>

#include "trainer/model/model_config.h"

namespace aligntrain::model {

// How a family declares sliding-window attention in config.json.
enum class WindowField {
  kNone,              // no window field
  kSlidingWindow,     // "sliding_window": N or null (Mistral): attention restricted to the last N keys
  kUseSlidingWindow,  // "use_sliding_window" must be false (Qwen2, Qwen3); written as false
};

struct Architecture {
  Arch arch;
  const char* model_type;  // config.json "model_type"
  const char* hf_class;    // config.json "architectures"[0]
  const char* hf_classifier_class;  // the same decoder with a score head (reward models; sequence_classifier.h)
  bool qkv_bias;           // biases on q, k and v always (Qwen2)
  bool qk_norm;            // per-head RMSNorm on q and k before rotary (Qwen3)
  bool attention_bias;     // reads and writes config.json "attention_bias" (q, k, v and o biases)
  bool mlp_bias;           // reads and writes config.json "mlp_bias"
  WindowField window;
};

// Every supported family, in Arch order.
const std::vector<Architecture>& architectures();
const Architecture& architecture(Arch arch);
// The family of a config.json "model_type"; nullptr when unsupported.
const Architecture* find_architecture(const std::string& model_type);
// "llama, mistral, qwen2, qwen3": for error messages.
std::string architecture_names();

// The MLP's activation by config.json "hidden_act" name.
struct ActivationInfo {
  Activation activation;
  const char* hf_name;
};
const std::vector<ActivationInfo>& activations();
const char* activation_name(Activation activation);

}  // namespace aligntrain::model
