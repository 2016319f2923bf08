#include "trainer/stages/models.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "common/errors.h"
#include "trainer/model/checkpoint_io.h"
#include "trainer/model/hf_names.h"
#include "trainer/model/recipe_models.h"
#include "trainer/parallel/layers.h"

namespace aligntrain::stages {

namespace fs = std::filesystem;

fs::path stage_model_dir(const config::Recipe& recipe, const std::string& stage) {
  return fs::path(recipe.run.output_dir) / stage / "model";
}

fs::path byte_tokenizer_dir(const config::Recipe& recipe) { return fs::path(recipe.run.output_dir) / ".tokenizer-byte"; }

ModelSource resolve_model(const config::Recipe& recipe, const std::string& name) {
  ModelSource src;
  src.name = name;
  if (const config::ModelSpec* spec = recipe.models.find(name)) {
    src.config = model::model_config_of(*spec);
    src.weights_dir = spec->init ? "" : spec->path;
    src.init = spec->init;
    src.tokenizer_dir = spec->tokenizer == config::kByteTokenizer ? byte_tokenizer_dir(recipe).string() : spec->tokenizer;
    src.chat_template = spec->chat_template;
    if (spec->init && fs::exists(src.tokenizer_dir)) {
      // The model's special ids are its tokenizer's (as init-model sets them).
      const auto tok = data::load_tokenizer(src.tokenizer_dir);
      auto ids = [](std::optional<int32_t> id) { return id ? std::vector<int64_t>{*id} : std::vector<int64_t>{}; };
      src.config.bos_token_ids = ids(tok->bos_id());
      src.config.eos_token_ids = ids(tok->eos_id());
      src.config.pad_token_id = tok->pad_id() ? std::optional<int64_t>(*tok->pad_id()) : std::nullopt;
    }
    return src;
  }
  for (const auto& stage : recipe.stages) {
    if (stage.name != name) continue;
    if (!config::is_training(stage.kind)) {
      throw UsageError("'" + name + "' is " + config::a_stage(stage.kind) + ", which makes no model");
    }
    const fs::path dir = stage_model_dir(recipe, name);
    if (!fs::exists(dir / "config.json")) {
      throw DataError(dir.string() + ": stage '" + name + "' has not produced its model yet");
    }
    src.config = model::load_model_config((dir / "config.json").string());
    src.weights_dir = dir.string();
    src.tokenizer_dir = dir.string();
    // The chat template is the one of the declared model the stage descends from.
    const ModelSource root = resolve_model(recipe, stage.policy);
    src.chat_template = root.chat_template;
    return src;
  }
  throw UsageError("no model or stage named '" + name + "'");
}

LoadedModel load_model(const ModelSource& source, runtime::Groups& groups, const at::Device& device,
                       at::ScalarType dtype) {
  LoadedModel out;
  out.factory = parallel::tensor_parallel_layer_factory(*groups.tp);
  out.lm = std::make_shared<model::CausalLM>(source.config, *out.factory);
  if (source.init) {
    model::init_weights(*out.lm, static_cast<uint64_t>(source.init->seed), groups.layout.tp_rank, groups.layout.tp);
  } else {
    model::load_hf_weights(*out.lm, source.weights_dir, groups.layout.tp_rank, groups.layout.tp);
  }
  out.lm->to(device, dtype);
  return out;
}

LoadedModel load_frozen_model(const ModelSource& source, runtime::Groups& groups, const at::Device& device,
                              at::ScalarType dtype) {
  LoadedModel out = load_model(source, groups, device, dtype);
  out.lm->parameter_set().set_trainable([](const model::Parameter&) { return true; }, false);
  return out;
}

void save_model(model::CausalLM& lm, runtime::Groups& groups, const fs::path& dir, const std::string& tokenizer_dir) {
  std::vector<std::pair<std::string, at::Tensor>> full;
  if (groups.layout.dp_rank == 0) {
    at::NoGradGuard no_grad;
    for (const auto& p : lm.parameter_set()) {
      at::Tensor t = p.tensor.detach();
      const int dim = model::split_dim(p.spec.split);
      if (groups.layout.tp > 1 && dim >= 0) t = groups.tp->all_gather(t.contiguous(), dim);
      full.emplace_back(p.name(), t.to(at::kCPU));
    }
  }
  if (groups.layout.rank == 0) model::save_hf_model(dir.string(), lm.config(), full, tokenizer_dir);
  groups.world->barrier();
}

}  // namespace aligntrain::stages
