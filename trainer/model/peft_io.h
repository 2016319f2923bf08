// PEFT LoRA adapter folders in and out: adapter_config.json + adapter_model.safetensors, whose tensors are named
// "base_model.model." + our parameter name ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"), as
// PEFT 0.21 saves them. Options aligntrain does not implement are a DataError naming the field, never ignored.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "trainer/model/lora.h"
#include "trainer/model/transformer.h"

namespace aligntrain::model {

// The LoRA settings of `dir`/adapter_config.json. Throws DataError (unreadable file; peft_type other than LORA;
// use_dora; modules_to_save; bias other than none; fan_in_fan_out; rank_pattern / alpha_pattern; layers_to_transform;
// target_modules as a regular expression or naming a module that is not a Llama linear map).
LoraSettings read_adapter_config(const std::string& dir);

// Fills the model's adapters (this rank's slices) from `dir`/adapter_model.safetensors. A missing or unexpected
// tensor, or a wrong shape, is a DataError naming the file and the tensor.
void load_adapter_weights(CausalLM& model, const std::string& dir, int64_t tp_rank, int64_t tp_size);

// Writes a PEFT adapter folder from the full (gathered) adapter tensors, named as our parameters. Written to a
// temporary sibling and renamed into place.
void save_adapter(const std::string& dir, const LoraSettings& settings, const std::string& base_model,
                  const std::vector<std::pair<std::string, at::Tensor>>& adapters);

inline constexpr const char* kPeftPrefix = "base_model.model.";

}  // namespace aligntrain::model
