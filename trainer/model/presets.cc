// See presets.h.
#include "trainer/model/presets.h"

#include <functional>
#include <map>

#include "common/errors.h"

namespace aligntrain::model {

namespace {

// The byte-level tokenizer's vocabulary (256 bytes + <|bos|> <|eos|> <|pad|> <|im_start|> <|im_end|>).
constexpr int64_t kByteVocab = 261;
constexpr int64_t kByteBos = 256, kByteEos = 257, kBytePad = 258;

ModelConfig tiny(Arch arch, int64_t layers) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = kByteVocab;
  c.hidden_size = 64;
  c.intermediate_size = 176;
  c.num_layers = layers;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.max_position_embeddings = 1024;
  c.tie_word_embeddings = true;
  c.bos_token_ids = {kByteBos};
  c.eos_token_ids = {kByteEos};
  c.pad_token_id = kBytePad;
  return c;
}

const std::map<std::string, std::function<ModelConfig()>>& presets() {
  static const std::map<std::string, std::function<ModelConfig()>> table = {
      {"tiny-llama", [] { return tiny(Arch::kLlama, 2); }},
      {"tiny-llama-4l", [] { return tiny(Arch::kLlama, 4); }},
      {"tiny-qwen2",
       [] {
         auto c = tiny(Arch::kQwen2, 2);
         c.tie_word_embeddings = false;
         return c;
       }},
      {"tiny-qwen3",
       [] {
         auto c = tiny(Arch::kQwen3, 2);
         c.head_dim = 32;
         return c;
       }},
      {"small-llama",
       [] {
         auto c = tiny(Arch::kLlama, 6);
         c.hidden_size = 384;
         c.intermediate_size = 1024;
         c.num_heads = 6;
         c.num_kv_heads = 2;
         c.head_dim = 64;
         c.tie_word_embeddings = false;
         return c;
       }},
  };
  return table;
}

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& [name, make] : presets()) names.push_back(name);
  return names;
}

ModelConfig preset_config(const std::string& name) {
  const auto it = presets().find(name);
  if (it == presets().end()) {
    std::string list;
    for (const auto& n : preset_names()) list += (list.empty() ? "" : ", ") + n;
    throw UsageError("unknown model preset `" + name + "` (available: " + list + ")");
  }
  return it->second();
}

}  // namespace aligntrain::model
