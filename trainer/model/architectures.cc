// See architectures.h.
#include "trainer/model/architectures.h"

#include <stdexcept>

namespace aligntrain::model {

const std::vector<Architecture>& architectures() {
  //                                                                            qkv_bias qk_norm attn_bias mlp_bias
  static const std::vector<Architecture> table = {
      {Arch::kLlama, "llama", "LlamaForCausalLM", "LlamaForSequenceClassification", false, false, true, true,
       WindowField::kNone},
      {Arch::kMistral, "mistral", "MistralForCausalLM", "MistralForSequenceClassification", false, false, false, false,
       WindowField::kSlidingWindow},
      {Arch::kQwen2, "qwen2", "Qwen2ForCausalLM", "Qwen2ForSequenceClassification", true, false, false, false,
       WindowField::kUseSlidingWindow},
      {Arch::kQwen3, "qwen3", "Qwen3ForCausalLM", "Qwen3ForSequenceClassification", false, true, true, false,
       WindowField::kUseSlidingWindow},
  };
  return table;
}

const Architecture& architecture(Arch arch) {
  for (const auto& a : architectures())
    if (a.arch == arch) return a;
  throw std::logic_error("architecture table has no entry for arch " + std::to_string(static_cast<int>(arch)));
}

const Architecture* find_architecture(const std::string& model_type) {
  for (const auto& a : architectures())
    if (model_type == a.model_type) return &a;
  return nullptr;
}

std::string architecture_names() {
  std::string out;
  for (const auto& a : architectures()) out += (out.empty() ? "" : ", ") + std::string(a.model_type);
  return out;
}

const std::vector<ActivationInfo>& activations() {
  static const std::vector<ActivationInfo> table = {{Activation::kSilu, "silu"}};
  return table;
}

const char* activation_name(Activation activation) {
  for (const auto& a : activations())
    if (a.activation == activation) return a.hf_name;
  throw std::logic_error("activation table has no entry");
}

}  // namespace aligntrain::model
