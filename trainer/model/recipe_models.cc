// See recipe_models.h.
#include "trainer/model/recipe_models.h"

#include <filesystem>

#include "common/errors.h"
#include "trainer/model/classifier_config.h"
#include "trainer/model/presets.h"

namespace aligntrain::model {

ModelConfig model_config_of(const config::ModelSpec& spec) {
  if (!spec.init) return load_model_config((std::filesystem::path(spec.path) / "config.json").string());
  const config::InitSpec& init = *spec.init;
  ModelConfig c = preset_config(init.preset);
  if (init.hidden_size) c.hidden_size = *init.hidden_size;
  if (init.num_layers) c.num_layers = *init.num_layers;
  if (init.num_heads) c.num_heads = *init.num_heads;
  if (init.num_kv_heads) c.num_kv_heads = *init.num_kv_heads;
  if (init.intermediate_size) c.intermediate_size = *init.intermediate_size;
  if (init.vocab_size) c.vocab_size = *init.vocab_size;
  if (init.max_position_embeddings) c.max_position_embeddings = *init.max_position_embeddings;
  if (init.tie_word_embeddings) c.tie_word_embeddings = *init.tie_word_embeddings;
  if (init.hidden_size || init.num_heads) c.head_dim = c.hidden_size / c.num_heads;
  check_model_config(c, "models: init");
  return c;
}

config::Diagnostics check_models(const config::Recipe& recipe) {
  config::Diagnostics out;
  for (const auto& [name, spec] : recipe.models.items) {
    const std::string path = "models." + name;
    const config::Location where = recipe.sources.find(path);
    auto report = [&](const std::string& key, const std::string& message) {
      out.push_back(config::Diagnostic{where.file, where.line, where.column, key, message});
    };
    ModelConfig c;
    try {
      c = model_config_of(spec);
    } catch (const std::exception& e) {
      report(path + (spec.init ? ".init" : ".path"), e.what());
      continue;
    }
    for (auto d : config::check_model_dims(recipe.parallel.tensor, static_cast<int>(c.num_heads),
                                           static_cast<int>(c.num_kv_heads), static_cast<int>(c.intermediate_size),
                                           static_cast<int>(c.vocab_size))) {
      report(path, d.message);
    }
  }
  // Reward models of online stages: sequence classifiers with one label (config.validate checked that each names a
  // declared model with a path).
  for (size_t i = 0; i < recipe.stages.size(); ++i) {
    const auto& rewards = recipe.stages[i].online.rewards;
    for (size_t j = 0; j < rewards.size(); ++j) {
      const config::ModelSpec* spec = rewards[j].model.empty() ? nullptr : recipe.models.find(rewards[j].model);
      if (rewards[j].type != config::RewardType::model || spec == nullptr || spec->init) continue;
      const std::string key = "stages[" + std::to_string(i) + "].online.rewards[" + std::to_string(j) + "].model";
      const config::Location where = recipe.sources.find(key);
      try {
        load_reward_model_config(spec->path);
      } catch (const std::exception& e) {
        out.push_back(config::Diagnostic{where.file, where.line, where.column,
                                         "stages." + recipe.stages[i].name + ".online.rewards[" + std::to_string(j) +
                                             "].model",
                                         "reward model `" + rewards[j].model + "`: " + e.what()});
      }
    }
  }
  return out;
}

}  // namespace aligntrain::model
