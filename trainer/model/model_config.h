// The architecture hyper-parameters of a Llama-family decoder (Llama 2/3/3.1/3.2, Mistral, Qwen2/2.5, Qwen3), read
// from and written to a Hugging Face `config.json`. Unsupported architectures or field values are errors (DataError
// naming the file and field), never a silently different model.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace aligntrain::model {

// The families and activations themselves are described in architectures.h.
enum class Arch { kLlama, kMistral, kQwen2, kQwen3 };
enum class Activation { kSilu };

struct RopeScaling {
  std::string type = "default";  // default | linear | llama3
  double factor = 1.0;
  double low_freq_factor = 1.0;    // llama3
  double high_freq_factor = 4.0;   // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3
};

struct ModelConfig {
  Arch arch = Arch::kLlama;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_heads unless config.json says otherwise
  Activation activation = Activation::kSilu;  // config.json "hidden_act"
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // bias on q, k, v, o (Llama/Qwen3 `attention_bias`)
  bool mlp_bias = false;        // Llama `mlp_bias`
  std::optional<int64_t> sliding_window;  // Mistral; attention restricted to the last N keys
  std::string torch_dtype = "float32";    // float32 | bfloat16 | float16 (the stored weights)
  std::vector<int64_t> bos_token_ids, eos_token_ids;
  std::optional<int64_t> pad_token_id;
  double initializer_range = 0.02;

  std::string model_type() const;  // llama | mistral | qwen2 | qwen3
  // Family traits (architectures.h) combined with the config's own switches:
  bool qkv_bias() const;  // biases on q, k and v (Qwen2 always; attention_bias)
  bool qk_norm() const;   // per-head RMSNorm on q and k before rotary (Qwen3)
};

// Reads `config.json`; `label` names the file in errors.
ModelConfig parse_model_config(const std::string& json_text, const std::string& label);
ModelConfig load_model_config(const std::string& path);

// A config.json that transformers loads as the same architecture.
std::string model_config_to_json(const ModelConfig& config);

// Checks internal consistency (heads divide, positive sizes); throws DataError naming `label` and the field.
void check_model_config(const ModelConfig& config, const std::string& label);

// Number of parameters of the whole (unsharded) model.
int64_t parameter_count(const ModelConfig& config);

}  // namespace aligntrain::model
