// The models a pipeline works with: where a stage's starting point comes from (a declared model or an earlier
// stage's output), building it sharded over the tensor-parallel group, and saving a trained model as an HF model
// dir (shards gathered over the TP group, written by rank 0).
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "config/schema.h"
#include "data/tokenizer.h"
#include "trainer/model/lora.h"
#include "trainer/model/model_config.h"
#include "trainer/model/projection.h"
#include "trainer/model/transformer.h"
#include "trainer/runtime/communicators.h"

namespace aligntrain::stages {

struct ModelSource {
  std::string name;                        // the recipe's name: a declared model or a stage
  model::ModelConfig config;
  std::string weights_dir;                 // HF model dir; empty for a random init
  std::optional<config::InitSpec> init;
  std::string tokenizer_dir;               // folder holding the tokenizer files
  std::string chat_template = "auto";      // auto, a built-in template name, or a .jinja file
  // LoRA: adapters on the base above (base frozen, adapters trainable under load_model). With adapter_dir the
  // adapters are loaded from that PEFT folder, else initialised from lora_seed.
  std::optional<model::LoraSettings> lora;
  std::string adapter_dir;
  uint64_t lora_seed = 0;
  bool lora_merge = false;                 // the stage also writes the merged model to <stage>/model
};

// The output folder of a training stage's model: <output_dir>/<stage>/model.
std::filesystem::path stage_model_dir(const config::Recipe& recipe, const std::string& stage);

// The PEFT adapter folder of a LoRA training stage: <output_dir>/<stage>/adapter.
std::filesystem::path stage_adapter_dir(const config::Recipe& recipe, const std::string& stage);

// The LoRA settings of a recipe's `lora` block (all-linear expanded).
model::LoraSettings lora_settings(const config::LoraConfig& lora);

// The starting point of a training stage: its policy, with the stage's own `lora` (if set) as fresh adapters on it,
// replacing the settings of a declared model's untrained `lora` (validation rejects a policy with trained adapters).
ModelSource policy_source(const config::Recipe& recipe, const config::StageConfig& stage);

// Folder the byte-level tokenizer of declared models is written to: <output_dir>/.tokenizer-byte.
std::filesystem::path byte_tokenizer_dir(const config::Recipe& recipe);

// Resolves `name` (declared model or earlier training stage, whose model dir must exist). Throws DataError for an
// unreadable config.json and UsageError for an unknown name.
ModelSource resolve_model(const config::Recipe& recipe, const std::string& name);

struct LoadedModel {
  std::unique_ptr<model::LayerFactory> factory;  // kept alive with the model
  std::shared_ptr<model::CausalLM> lm;
};

// Builds `source` sharded over groups.tp, loads or initialises its weights, and moves it to `device` / `dtype`.
LoadedModel load_model(const ModelSource& source, runtime::Groups& groups, const at::Device& device,
                       at::ScalarType dtype);

// load_model for a model that is not trained (a reference, a teacher): every parameter frozen through its parameter
// set, so it holds no gradients.
LoadedModel load_frozen_model(const ModelSource& source, runtime::Groups& groups, const at::Device& device,
                              at::ScalarType dtype);

// Gathers the model's shards over groups.tp and writes an HF model dir (world rank 0). Collective over the world.
// A model with LoRA adapters is written merged (PEFT's merge_and_unload).
void save_model(model::CausalLM& lm, runtime::Groups& groups, const std::filesystem::path& dir,
                const std::string& tokenizer_dir);

// Gathers the adapters over groups.tp and writes a PEFT adapter folder (world rank 0). Collective over the world.
void save_adapter(model::CausalLM& lm, const model::LoraSettings& settings, runtime::Groups& groups,
                  const std::filesystem::path& dir, const std::string& base_model);

}  // namespace aligntrain::stages
