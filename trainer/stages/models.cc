#include "trainer/stages/models.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "common/errors.h"
#include "trainer/model/checkpoint_io.h"
#include "trainer/model/hf_names.h"
#include "trainer/model/peft_io.h"
#include "trainer/model/recipe_models.h"
#include "trainer/parallel/layers.h"
#include "trainer/parallel/mappings.h"

namespace aligntrain::stages {

namespace fs = std::filesystem;

fs::path stage_model_dir(const config::Recipe& recipe, const std::string& stage) {
  return fs::path(recipe.run.output_dir) / stage / "model";
}

fs::path stage_adapter_dir(const config::Recipe& recipe, const std::string& stage) {
  return fs::path(recipe.run.output_dir) / stage / "adapter";
}

model::LoraSettings lora_settings(const config::LoraConfig& lora) {
  model::LoraSettings s;
  s.rank = lora.rank;
  s.alpha = lora.alpha;
  s.dropout = lora.dropout;
  s.rslora = lora.rslora;
  s.init = lora.init == config::LoraInit::gaussian ? model::LoraInitKind::kGaussian : model::LoraInitKind::kDefault;
  const bool all = lora.targets.size() == 1 && lora.targets[0] == "all-linear";
  for (const auto& m : model::all_linear_targets())
    if (all || std::find(lora.targets.begin(), lora.targets.end(), m) != lora.targets.end()) s.targets.push_back(m);
  return s;
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
    src.lora_seed = static_cast<uint64_t>(recipe.run.seed);
    if (spec->lora) {
      src.lora = lora_settings(*spec->lora);
      src.lora_merge = spec->lora->merge;
    } else if (!spec->adapter.empty()) {
      src.lora = model::read_adapter_config(spec->adapter);
      src.adapter_dir = spec->adapter;
    }
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
    // A LoRA stage's model is its policy's base with the stage's adapter.
    ModelSource root = policy_source(recipe, stage);
    if (root.lora) {
      const fs::path adapter = stage_adapter_dir(recipe, name);
      if (!fs::exists(adapter / "adapter_config.json")) {
        throw DataError(adapter.string() + ": stage '" + name + "' has not produced its adapter yet");
      }
      root.name = name;
      root.adapter_dir = adapter.string();
      root.lora = model::read_adapter_config(root.adapter_dir);
      root.lora_merge = false;
      return root;
    }
    const fs::path dir = stage_model_dir(recipe, name);
    if (!fs::exists(dir / "config.json")) {
      throw DataError(dir.string() + ": stage '" + name + "' has not produced its model yet");
    }
    src.config = model::load_model_config((dir / "config.json").string());
    src.weights_dir = dir.string();
    src.tokenizer_dir = dir.string();
    // The chat template is the one of the declared model the stage descends from.
    src.chat_template = root.chat_template;
    return src;
  }
  throw UsageError("no model or stage named '" + name + "'");
}

ModelSource policy_source(const config::Recipe& recipe, const config::StageConfig& stage) {
  ModelSource src = resolve_model(recipe, stage.policy);
  if (!stage.lora) return src;
  if (!src.adapter_dir.empty()) {
    throw UsageError("stage '" + stage.name + "': policy '" + stage.policy + "' already carries trained LoRA adapters (" +
                     src.adapter_dir + "); a stage `lora` cannot add fresh adapters on top of them");
  }
  src.lora = lora_settings(*stage.lora);
  src.lora_merge = stage.lora->merge;
  src.lora_seed = static_cast<uint64_t>(recipe.run.seed);
  return src;
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
  if (source.lora) {
    model::LoraMappings maps;
    if (groups.layout.tp > 1) {
      runtime::Communicator* tp = groups.tp.get();
      maps.column = [tp](const at::Tensor& u) { return parallel::copy_to_group(u, *tp); };
      maps.row = [tp](const at::Tensor& u) { return parallel::reduce_from_group(u, *tp); };
    }
    model::attach_lora(*out.lm, *source.lora, groups.layout.tp_rank, groups.layout.tp, maps);
    if (!source.adapter_dir.empty()) {
      model::load_adapter_weights(*out.lm, source.adapter_dir, groups.layout.tp_rank, groups.layout.tp);
    } else {
      model::init_lora(*out.lm, *source.lora, source.lora_seed, groups.layout.tp_rank, groups.layout.tp);
    }
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

namespace {

// The full tensors of the parameters `select` picks, gathered over groups.tp on the first data-parallel replica.
template <class Select>
std::vector<std::pair<std::string, at::Tensor>> gather_full(model::CausalLM& lm, runtime::Groups& groups,
                                                            Select select) {
  std::vector<std::pair<std::string, at::Tensor>> full;
  if (groups.layout.dp_rank != 0) return full;
  at::NoGradGuard no_grad;
  for (const auto& p : lm.parameter_set()) {
    if (!select(p)) continue;
    at::Tensor t = p.tensor.detach();
    const int dim = model::split_dim(p.spec.split);
    if (groups.layout.tp > 1 && dim >= 0) t = groups.tp->all_gather(t.contiguous(), dim);
    full.emplace_back(p.name(), t.to(at::kCPU));
  }
  return full;
}

}  // namespace

void save_model(model::CausalLM& lm, runtime::Groups& groups, const fs::path& dir, const std::string& tokenizer_dir) {
  auto full = gather_full(lm, groups, [](const model::Parameter&) { return true; });
  if (groups.layout.rank == 0) {
    if (model::has_lora(lm)) full = model::merge_lora(full, model::lora_scaling(lm));
    model::save_hf_model(dir.string(), lm.config(), full, tokenizer_dir);
  }
  groups.world->barrier();
}

void save_adapter(model::CausalLM& lm, const model::LoraSettings& settings, runtime::Groups& groups,
                  const fs::path& dir, const std::string& base_model) {
  auto full = gather_full(lm, groups, [](const model::Parameter& p) { return model::is_adapter_name(p.name()); });
  if (groups.layout.rank == 0) model::save_adapter(dir.string(), settings, base_model, full);
  groups.world->barrier();
}

}  // namespace aligntrain::stages
